package io.herald.gateway.connector.sms;

import java.util.Locale;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A parsed SMSC delivery receipt ({@code id:... sub:... dlvrd:... submit date:... done date:...
 * stat:... err:...}) and the message id normalisation that matches receipts to submissions.
 * Immutable; the static helpers are pure.
 */
record SmscReceipt(String id, String stat, String err) {

    private static final Pattern ID = Pattern.compile("(?i)(?:^|\\s)id:\\s*(\\S+)");
    private static final Pattern STAT = Pattern.compile("(?i)(?:^|\\s)stat:\\s*(\\S+)");
    private static final Pattern ERR = Pattern.compile("(?i)(?:^|\\s)err:\\s*(\\S+)");

    /**
     * Parses a receipt text, tolerant of case and spacing; {@code fallbackId} (the
     * receipted_message_id TLV, or null) is used when the text has no id. Null when there is no id
     * or no state.
     */
    static SmscReceipt parse(String text, String fallbackId, String fallbackStat) {
        String id = group(ID, text);
        String stat = group(STAT, text);
        if (id == null) {
            id = fallbackId;
        }
        if (stat == null) {
            stat = fallbackStat;
        }
        if (id == null || id.isEmpty() || stat == null) {
            return null;
        }
        return new SmscReceipt(id, stat.toUpperCase(Locale.ROOT), group(ERR, text));
    }

    private static String group(Pattern p, String text) {
        if (text == null) {
            return null;
        }
        Matcher m = p.matcher(text);
        return m.find() ? m.group(1) : null;
    }

    /** True for a final state; ACCEPTD and ENROUTE (and unknown words) are intermediate. */
    boolean isFinal() {
        return outcome() != null;
    }

    /** {@code delivered} or {@code failed}, or null for an intermediate state. */
    String outcome() {
        return switch (stat) {
            case "DELIVRD" -> "delivered";
            case "UNDELIV", "EXPIRED", "REJECTD", "DELETED", "UNKNOWN" -> "failed";
            default -> null;
        };
    }

    /** The failure reason in snake_case, null when delivered. */
    String reason() {
        return switch (stat) {
            case "UNDELIV" -> "undelivered";
            case "EXPIRED" -> "expired";
            case "REJECTD" -> "rejected";
            case "DELETED" -> "deleted";
            case "UNKNOWN" -> "unknown";
            default -> null;
        };
    }

    /**
     * Normalises an SMSC message id so SMPP 3.3 (hex) and 3.4 (decimal) spellings of one id
     * compare equal: all digits reads as decimal, else hex digits read as hex; the result is the
     * decimal string when the number fits a signed long, else the trimmed upper-case id. An id
     * that is hex but happens to be all digits reads as decimal: that ambiguity cannot be solved
     * from the id alone.
     */
    static String normaliseId(String id) {
        String s = id.trim();
        if (s.isEmpty()) {
            return s;
        }
        int radix = s.chars().allMatch(c -> c >= '0' && c <= '9') ? 10
                : s.chars().allMatch(c -> Character.digit(c, 16) >= 0) ? 16 : 0;
        if (radix != 0) {
            try {
                return Long.toString(Long.parseLong(s, radix));
            } catch (NumberFormatException tooLong) {
                // fall through
            }
        }
        return s.toUpperCase(Locale.ROOT);
    }
}

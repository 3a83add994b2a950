package io.herald.gateway.connector.sms;

import io.herald.protocol.Message;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * The text of an SMS and its encoding for SMPP: GSM 03.38 7-bit default alphabet when every
 * character is in it (the extension table's {@code ^ { } \ [ ~ ] | €} and form feed cost two
 * septets: escape + code), else UCS-2. A text fits one message up to 160 septets (GSM) or 70
 * UTF-16 units (UCS-2); longer texts become concatenated parts of at most 153 septets / 67 units,
 * each starting with a 6-byte user data header (IEI 0x00, 8-bit reference, total, sequence). A
 * surrogate pair (emoji) or an escape sequence is never split across parts.
 *
 * <p>GSM parts are unpacked, one septet per byte, as SMPP expects with {@code data_coding} 0x00
 * (the SMSC packs them for the air interface); UCS-2 parts are big-endian with
 * {@code data_coding} 0x08. Trade-off: no national language shift tables, so Turkish,
 * Portuguese or Indian texts with characters outside the default alphabet go as UCS-2 (70/67
 * per part) rather than 7-bit with a locking shift.
 *
 * <p>Stateless and thread-safe; the only shared state is the rotating concatenation reference.
 */
public final class SmsText {

    /** Septets (GSM) in one unconcatenated message. */
    public static final int GSM_SINGLE = 160;
    /** Septets (GSM) in one part of a concatenated message (160 minus the 6-byte UDH, 7 septets). */
    public static final int GSM_PART = 153;
    /** UTF-16 units (UCS-2) in one unconcatenated message. */
    public static final int UCS2_SINGLE = 70;
    /** UTF-16 units (UCS-2) in one part of a concatenated message (140 bytes minus the 6-byte UDH). */
    public static final int UCS2_PART = 67;
    /** Most parts a concatenated message can have (8-bit total in the UDH). */
    public static final int MAX_PARTS = 255;

    private static final int ESC = 0x1B;

    /** GSM 03.38 default alphabet, indexed by septet; 0x1B is the escape to the extension table. */
    private static final String BASIC =
            "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\u001BÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                    + "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
    /** Extension table characters and their codes (after the escape). */
    private static final String EXT_CHARS = "\f^{}\\[~]|€";
    private static final int[] EXT_CODES = {0x0A, 0x14, 0x28, 0x29, 0x2F, 0x3C, 0x3D, 0x3E, 0x40, 0x65};

    private static final int[] TO_GSM = new int[0x10000]; // char -> septet, or septet | 0x100 for extension, -1 = none
    private static final char[] EXT_DECODE = new char[128];

    static {
        if (BASIC.length() != 128) {
            throw new ExceptionInInitializerError("GSM table has " + BASIC.length() + " entries");
        }
        java.util.Arrays.fill(TO_GSM, -1);
        for (int i = 0; i < 128; i++) {
            if (i != ESC) {
                TO_GSM[BASIC.charAt(i)] = i;
            }
        }
        for (int i = 0; i < EXT_CODES.length; i++) {
            TO_GSM[EXT_CHARS.charAt(i)] = 0x100 | EXT_CODES[i];
            EXT_DECODE[EXT_CODES[i]] = EXT_CHARS.charAt(i);
        }
    }

    private static final AtomicInteger REFERENCE = new AtomicInteger(
            java.util.concurrent.ThreadLocalRandom.current().nextInt(256));

    private SmsText() {
    }

    /** SMPP {@code data_coding} of a text. */
    public enum Coding {
        /** GSM 03.38 default alphabet, unpacked (SMSC default alphabet, 0x00). */
        GSM7((byte) 0x00),
        /** UCS-2 big-endian (0x08). */
        UCS2((byte) 0x08);

        private final byte value;

        Coding(byte value) {
            this.value = value;
        }

        /** The {@code data_coding} byte. */
        public byte value() {
            return value;
        }
    }

    /**
     * A text ready for {@code submit_sm}: one {@code short_message} per part (with the UDH first
     * when {@code segments > 1}, so esm_class must carry UDHI 0x40). Immutable by convention:
     * callers must not modify the part arrays.
     */
    public record Encoded(Coding dataCoding, List<byte[]> parts, int segments) {
        public Encoded {
            parts = List.copyOf(parts);
        }

        /** True when the parts carry a user data header (concatenated message). */
        public boolean concatenated() {
            return segments > 1;
        }
    }

    /**
     * The SMS text of a message: {@code smsBody} when present, else title and body joined with a
     * newline (null or blank parts skipped); empty when there is nothing.
     */
    public static String textOf(Message message) {
        return textOf(message.smsBody(), message.title(), message.body());
    }

    /** As {@link #textOf(Message)}, from the fields. */
    public static String textOf(String smsBody, String title, String body) {
        if (smsBody != null && !smsBody.isBlank()) {
            return smsBody;
        }
        boolean hasTitle = title != null && !title.isBlank();
        boolean hasBody = body != null && !body.isBlank();
        if (hasTitle && hasBody) {
            return title + "\n" + body;
        }
        return hasTitle ? title : hasBody ? body : "";
    }

    /** True when every character of {@code text} is in the GSM default alphabet or its extension. */
    public static boolean isGsm(CharSequence text) {
        for (int i = 0; i < text.length(); i++) {
            if (TO_GSM[text.charAt(i)] < 0) {
                return false;
            }
        }
        return true;
    }

    /** Septets {@code text} takes in GSM 7-bit (extension characters count 2); -1 if not GSM. */
    public static int septets(CharSequence text) {
        int n = 0;
        for (int i = 0; i < text.length(); i++) {
            int g = TO_GSM[text.charAt(i)];
            if (g < 0) {
                return -1;
            }
            n += g > 0xFF ? 2 : 1;
        }
        return n;
    }

    /** Encodes with the next rotating concatenation reference. */
    public static Encoded encode(String text) {
        return encode(text, REFERENCE.getAndIncrement() & 0xFF);
    }

    /**
     * Encodes {@code text}; {@code reference} (0..255) goes into every part's UDH when the text
     * needs more than one part.
     *
     * @throws IllegalArgumentException if the text needs more than {@value #MAX_PARTS} parts
     */
    public static Encoded encode(String text, int reference) {
        java.util.Objects.requireNonNull(text, "text");
        List<byte[]> payloads = isGsm(text) ? gsmPayloads(text) : ucs2Payloads(text);
        Coding coding = isGsm(text) ? Coding.GSM7 : Coding.UCS2;
        int total = payloads.size();
        if (total > MAX_PARTS) {
            throw new IllegalArgumentException(String.format("text: %s segments (expected: <= %s)", total, MAX_PARTS));
        }
        if (total == 1) {
            return new Encoded(coding, payloads, 1);
        }
        List<byte[]> parts = new ArrayList<>(total);
        for (int i = 0; i < total; i++) {
            byte[] p = payloads.get(i);
            byte[] sm = new byte[6 + p.length];
            sm[0] = 0x05; // UDHL
            sm[1] = 0x00; // IEI: concatenated short messages, 8-bit reference
            sm[2] = 0x03; // IEDL
            sm[3] = (byte) reference;
            sm[4] = (byte) total;
            sm[5] = (byte) (i + 1);
            System.arraycopy(p, 0, sm, 6, p.length);
            parts.add(sm);
        }
        return new Encoded(coding, parts, total);
    }

    private static List<byte[]> gsmPayloads(String text) {
        int septets = septets(text);
        int limit = septets <= GSM_SINGLE ? GSM_SINGLE : GSM_PART;
        List<byte[]> out = new ArrayList<>();
        ByteArrayOutputStream part = new ByteArrayOutputStream(limit);
        for (int i = 0; i < text.length(); i++) {
            int g = TO_GSM[text.charAt(i)];
            int width = g > 0xFF ? 2 : 1;
            if (part.size() + width > limit) { // never split escape + code
                out.add(part.toByteArray());
                part.reset();
            }
            if (width == 2) {
                part.write(ESC);
            }
            part.write(g & 0x7F);
        }
        out.add(part.toByteArray());
        return out;
    }

    private static List<byte[]> ucs2Payloads(String text) {
        int limit = text.length() <= UCS2_SINGLE ? UCS2_SINGLE : UCS2_PART;
        List<byte[]> out = new ArrayList<>();
        int start = 0;
        while (start < text.length()) {
            int end = Math.min(text.length(), start + limit);
            if (end < text.length() && Character.isHighSurrogate(text.charAt(end - 1))) {
                end--; // never split a surrogate pair
            }
            out.add(text.substring(start, end).getBytes(StandardCharsets.UTF_16BE));
            start = end;
        }
        if (out.isEmpty()) {
            out.add(new byte[0]);
        }
        return out;
    }

    /**
     * Decodes user data (without UDH) of the given {@code data_coding}: 0x00 unpacked GSM 7-bit,
     * 0x08 UCS-2, 0x03 Latin-1, anything else as ASCII/Latin-1. For peers and tests.
     */
    public static String decode(int dataCoding, byte[] userData) {
        int dc = dataCoding & 0xFF;
        if (dc == 0x08) {
            return new String(userData, StandardCharsets.UTF_16BE);
        }
        if (dc != 0x00) {
            return new String(userData, StandardCharsets.ISO_8859_1);
        }
        StringBuilder b = new StringBuilder(userData.length);
        for (int i = 0; i < userData.length; i++) {
            int s = userData[i] & 0x7F;
            if (s == ESC && i + 1 < userData.length) {
                char c = EXT_DECODE[userData[++i] & 0x7F];
                b.append(c != 0 ? c : ' ');
            } else {
                b.append(BASIC.charAt(s));
            }
        }
        return b.toString();
    }
}

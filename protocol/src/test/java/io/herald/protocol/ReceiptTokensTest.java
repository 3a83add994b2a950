package io.herald.protocol;

import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;

import static org.assertj.core.api.Assertions.assertThat;

class ReceiptTokensTest {
    static final byte[] K1 = filled(1);
    static final byte[] K2 = filled(2);
    final ReceiptTokens tokens = new ReceiptTokens(new ReceiptTokens.Key("k1", K1), List.of());

    static byte[] filled(int v) {
        byte[] b = new byte[32];
        Arrays.fill(b, (byte) v);
        return b;
    }

    @Test
    void aSignedTokenVerifiesForItsMessageAndRecipientOnly() {
        String t = tokens.sign("m-1", "alice", 2000);
        assertThat(t).startsWith("k1.2000.").doesNotContain("alice");
        assertThat(tokens.verify(t, "m-1", "alice", 1000)).isEqualTo(ReceiptTokens.Verdict.VALID);
        assertThat(tokens.verify(t, "m-2", "alice", 1000)).isEqualTo(ReceiptTokens.Verdict.BAD_SIGNATURE);
        assertThat(tokens.verify(t, "m-1", "bob", 1000)).isEqualTo(ReceiptTokens.Verdict.BAD_SIGNATURE);
    }

    @Test
    void expiredTamperedUnknownAndMalformedTokensAreRefused() {
        String t = tokens.sign("m-1", "alice", 2000);
        assertThat(tokens.verify(t, "m-1", "alice", 2001)).isEqualTo(ReceiptTokens.Verdict.EXPIRED);
        assertThat(tokens.verify(t.replace(".2000.", ".9999."), "m-1", "alice", 1000))
                .isEqualTo(ReceiptTokens.Verdict.BAD_SIGNATURE);
        assertThat(tokens.verify("k9" + t.substring(2), "m-1", "alice", 1000)).isEqualTo(ReceiptTokens.Verdict.UNKNOWN_KEY);
        assertThat(tokens.verify("garbage", "m-1", "alice", 1000)).isEqualTo(ReceiptTokens.Verdict.MALFORMED);
        assertThat(tokens.verify(null, "m-1", "alice", 1000)).isEqualTo(ReceiptTokens.Verdict.MALFORMED);
    }

    @Test
    void rotationKeepsOldTokensValid() {
        String old = tokens.sign("m-1", "alice", 2000);
        ReceiptTokens rotated = new ReceiptTokens(new ReceiptTokens.Key("k2", K2), List.of(new ReceiptTokens.Key("k1", K1)));
        assertThat(rotated.verify(old, "m-1", "alice", 1000)).isEqualTo(ReceiptTokens.Verdict.VALID);
        assertThat(rotated.sign("m-1", "alice", 2000)).startsWith("k2.");
    }
}

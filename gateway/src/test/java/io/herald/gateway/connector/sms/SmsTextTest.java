package io.herald.gateway.connector.sms;

import io.herald.gateway.connector.sms.SmsText.Coding;
import io.herald.gateway.connector.sms.SmsText.Encoded;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

class SmsTextTest {

    @Test
    void asciiUpTo160CharactersIsOneGsmSegment() {
        Encoded e = SmsText.encode("a".repeat(160));
        assertThat(e.dataCoding()).isEqualTo(Coding.GSM7);
        assertThat(e.segments()).isEqualTo(1);
        assertThat(e.concatenated()).isFalse();
        assertThat(e.parts().get(0)).hasSize(160); // unpacked: one septet per byte, no UDH
    }

    @Test
    void asciiOf161CharactersIsTwoConcatenatedSegments() {
        Encoded e = SmsText.encode("a".repeat(161), 7);
        assertThat(e.segments()).isEqualTo(2);
        assertThat(e.parts().get(0)).hasSize(6 + 153);
        assertThat(e.parts().get(1)).hasSize(6 + 8);
        assertThat(decodeAll(e)).isEqualTo("a".repeat(161));
    }

    @Test
    void extensionCharactersCountAsTwoSeptets() {
        assertThat(SmsText.septets("a{b}€")).isEqualTo(8);
        assertThat(SmsText.encode("€".repeat(80)).segments()).isEqualTo(1); // 160 septets
        assertThat(SmsText.encode("€".repeat(81)).segments()).isEqualTo(2); // 162 septets
        assertThat(SmsText.encode("a".repeat(159) + "^").segments()).isEqualTo(2);
    }

    @Test
    void escapeSequenceIsNeverSplitAcrossParts() {
        String text = "a".repeat(152) + "[" + "b".repeat(20); // the escape would be septet 153
        Encoded e = SmsText.encode(text, 1);
        assertThat(e.dataCoding()).isEqualTo(Coding.GSM7);
        assertThat(e.parts().get(0)).hasSize(6 + 152);
        assertThat(e.parts().get(1)[6]).isEqualTo((byte) 0x1B);
        assertThat(decodeAll(e)).isEqualTo(text);
    }

    @Test
    void gsmUsesTheDefaultAlphabetCodes() {
        byte[] sm = SmsText.encode("@£$¥ΔÄ§").parts().get(0);
        assertThat(sm).containsExactly(0x00, 0x01, 0x02, 0x03, 0x10, 0x5B, 0x5F);
        assertThat(SmsText.decode(0x00, sm)).isEqualTo("@£$¥ΔÄ§");
    }

    @Test
    void chineseUpTo70CharactersIsOneUcs2Segment() {
        Encoded seventy = SmsText.encode("中".repeat(70));
        assertThat(seventy.dataCoding()).isEqualTo(Coding.UCS2);
        assertThat(seventy.segments()).isEqualTo(1);
        assertThat(seventy.parts().get(0)).hasSize(140);
        assertThat(SmsText.encode("中".repeat(71)).segments()).isEqualTo(2);
    }

    @Test
    void threeHundredChineseCharactersAreFiveUcs2Segments() {
        String text = "汉字".repeat(150);
        Encoded e = SmsText.encode(text, 42);
        assertThat(e.dataCoding()).isEqualTo(Coding.UCS2);
        assertThat(e.segments()).isEqualTo(5); // 67 * 4 = 268 < 300 <= 335
        for (byte[] p : e.parts()) {
            assertThat(p.length).isLessThanOrEqualTo(140);
        }
        assertThat(decodeAll(e)).isEqualTo(text);
    }

    @Test
    void emojiIsNeverSplitAcrossParts() {
        String text = "a".repeat(66) + "😀" + "b".repeat(10); // the pair would straddle units 67/68
        Encoded e = SmsText.encode(text, 3);
        assertThat(e.dataCoding()).isEqualTo(Coding.UCS2);
        assertThat(e.segments()).isEqualTo(2);
        assertThat(e.parts().get(0)).hasSize(6 + 66 * 2);
        for (byte[] p : e.parts()) {
            String s = new String(p, 6, p.length - 6, StandardCharsets.UTF_16BE);
            assertThat(Character.isHighSurrogate(s.charAt(s.length() - 1))).isFalse();
            assertThat(Character.isLowSurrogate(s.charAt(0))).isFalse();
        }
        assertThat(decodeAll(e)).isEqualTo(text);
        assertThat(SmsText.encode("😀".repeat(35)).segments()).as("70 UTF-16 units").isEqualTo(1);
        assertThat(SmsText.encode("😀".repeat(36)).segments()).isEqualTo(2);
    }

    @Test
    void udhCarriesReferenceTotalAndPartNumber() {
        Encoded e = SmsText.encode("x".repeat(400), 0xAB);
        assertThat(e.segments()).isEqualTo(3);
        for (int i = 0; i < 3; i++) {
            byte[] p = e.parts().get(i);
            assertThat(Arrays.copyOf(p, 6)).containsExactly(0x05, 0x00, 0x03, 0xAB, 3, i + 1);
        }
    }

    @Test
    void rotatingReferenceIsSharedByAllPartsOfOneText() {
        Encoded e = SmsText.encode("y".repeat(320));
        assertThat(e.parts()).extracting(p -> p[3]).containsOnly(e.parts().get(0)[3]);
    }

    @Test
    void textOfPrefersSmsBodyElseJoinsTitleAndBody() {
        assertThat(SmsText.textOf("sms", "t", "b")).isEqualTo("sms");
        assertThat(SmsText.textOf(null, "t", "b")).isEqualTo("t\nb");
        assertThat(SmsText.textOf(" ", null, "b")).isEqualTo("b");
        assertThat(SmsText.textOf(null, "t", "  ")).isEqualTo("t");
        assertThat(SmsText.textOf(null, null, null)).isEmpty();
    }

    @Test
    void rejectsTextsOverMaxParts() {
        assertThatThrownBy(() -> SmsText.encode("z".repeat(153 * 255 + 1)))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("expected: <= 255");
    }

    private static String decodeAll(Encoded e) {
        StringBuilder b = new StringBuilder();
        for (byte[] p : e.parts()) {
            int skip = e.concatenated() ? 6 : 0;
            b.append(SmsText.decode(e.dataCoding().value(), Arrays.copyOfRange(p, skip, p.length)));
        }
        return b.toString();
    }
}

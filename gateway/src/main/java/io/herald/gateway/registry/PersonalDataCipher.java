package io.herald.gateway.registry;

import io.herald.gateway.config.KeyFile;
import io.herald.gateway.config.StartupException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import javax.crypto.Cipher;
import javax.crypto.spec.GCMParameterSpec;
import javax.crypto.spec.SecretKeySpec;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.SecureRandom;
import java.util.Base64;

/**
 * Encrypts personal data at rest (phone numbers) with AES-256-GCM: a fresh 12-byte nonce per
 * value, the owner (app and user) as associated data so a ciphertext cannot be moved to another
 * user, and a key id prefix ({@code v1:}) for rotation. The key comes from configuration
 * ({@code herald.data-key}, base64 of 32 bytes, env {@code HERALD_DATA_KEY}); without one, a key is
 * generated on first start into {@code <data-dir>/data-key} (owner-only) and reused. Thread-safe.
 */
public final class PersonalDataCipher {
    private static final Logger log = LoggerFactory.getLogger(PersonalDataCipher.class);
    private static final String PREFIX = "v1:";
    private final SecretKeySpec key;
    private final SecureRandom random = new SecureRandom();

    private PersonalDataCipher(byte[] key) {
        this.key = new SecretKeySpec(key, "AES");
    }

    /** The configured key, else the one in the data directory, else a new one stored there. */
    public static PersonalDataCipher load(String configuredKey, Path dataDir) {
        if (configuredKey != null && !configuredKey.isBlank()) {
            return new PersonalDataCipher(decodeKey(configuredKey, "herald.data-key / HERALD_DATA_KEY"));
        }
        Path file = dataDir.resolve("data-key");
        KeyFile.Key key = KeyFile.readOrCreate(file, "HERALD_DATA_KEY");
        if (key.generated()) {
            log.warn("generated a data encryption key in {}: back it up, or set HERALD_DATA_KEY; without it the "
                    + "stored phone numbers cannot be read", file);
        }
        return new PersonalDataCipher(decodeKey(key.base64(), file.toString()));
    }

    /** For tests: a cipher with the given raw key. */
    public static PersonalDataCipher of(byte[] key) {
        return new PersonalDataCipher(key.clone());
    }

    private static byte[] decodeKey(String base64, String where) {
        try {
            byte[] k = Base64.getDecoder().decode(base64.trim());
            if (k.length == 32) {
                return k;
            }
        } catch (IllegalArgumentException ignored) {
            // reported below
        }
        throw new StartupException(where + ": not a base64 AES-256 key (expected: 32 random bytes in base64, e.g. "
                + "from `openssl rand -base64 32`)");
    }

    public String encrypt(String plain, String owner) {
        try {
            byte[] nonce = new byte[12];
            random.nextBytes(nonce);
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.ENCRYPT_MODE, key, new GCMParameterSpec(128, nonce));
            c.updateAAD(owner.getBytes(StandardCharsets.UTF_8));
            byte[] ct = c.doFinal(plain.getBytes(StandardCharsets.UTF_8));
            return PREFIX + Base64.getEncoder().withoutPadding().encodeToString(
                    ByteBuffer.allocate(12 + ct.length).put(nonce).put(ct).array());
        } catch (GeneralSecurityException e) {
            throw new IllegalStateException("AES-GCM unavailable", e);
        }
    }

    /** The plain text, or null when the value cannot be decrypted with this key for this owner. */
    public String decrypt(String sealed, String owner) {
        if (sealed == null || !sealed.startsWith(PREFIX)) {
            return null;
        }
        try {
            byte[] all = Base64.getDecoder().decode(sealed.substring(PREFIX.length()));
            Cipher c = Cipher.getInstance("AES/GCM/NoPadding");
            c.init(Cipher.DECRYPT_MODE, key, new GCMParameterSpec(128, all, 0, 12));
            c.updateAAD(owner.getBytes(StandardCharsets.UTF_8));
            return new String(c.doFinal(all, 12, all.length - 12), StandardCharsets.UTF_8);
        } catch (GeneralSecurityException | IllegalArgumentException e) {
            return null;
        }
    }

    /** A phone number for display: country code and last two digits, e.g. {@code +44*******89}. */
    public static String mask(String phone) {
        if (phone == null || phone.length() < 6) {
            return phone == null ? null : "***";
        }
        return phone.substring(0, 3) + "*".repeat(phone.length() - 5) + phone.substring(phone.length() - 2);
    }
}

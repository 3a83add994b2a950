package io.herald.gateway.config;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.SecureRandom;
import java.util.Base64;

/**
 * A secret key kept in the data directory when none is configured: read it (base64) if the file
 * exists, else generate 32 random bytes and write them owner-only. Used for the personal-data key
 * and the receipt signing key. Stateless.
 */
public final class KeyFile {
    private KeyFile() {
    }

    /** The stored key in base64 and whether it was just generated. */
    public record Key(String base64, boolean generated) { }

    /** Reads {@code file}, or creates it; {@code env} names the variable that would replace it. */
    public static Key readOrCreate(Path file, String env) {
        try {
            if (Files.exists(file)) {
                return new Key(Files.readString(file, StandardCharsets.US_ASCII).trim(), false);
            }
            byte[] k = new byte[32];
            new SecureRandom().nextBytes(k);
            Files.createDirectories(file.getParent());
            String base64 = Base64.getEncoder().encodeToString(k);
            Files.writeString(file, base64 + "\n", StandardCharsets.US_ASCII);
            try {
                Files.setPosixFilePermissions(file, PosixFilePermissions.fromString("rw-------"));
            } catch (UnsupportedOperationException ignored) {
                // not a POSIX file system
            }
            return new Key(base64, true);
        } catch (IOException e) {
            throw new StartupException("cannot read or write " + file + ": " + e.getMessage()
                    + " (set " + env + ", or --data-dir to a writable directory)");
        }
    }
}

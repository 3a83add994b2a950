package io.herald.gateway.tracking;

import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.KeyFile;
import io.herald.gateway.config.StartupException;
import io.herald.protocol.ReceiptTokens;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;

/**
 * Builds the {@link ReceiptTokens} of this node from configuration: the current key
 * ({@code herald.receipts.key}, else a key generated once into {@code <data-dir>/receipt-key})
 * and the previous keys still accepted. Every node of a cluster must share the keys, so in
 * production set {@code HERALD_RECEIPT_KEY}. Stateless.
 */
public final class ReceiptKeys {
    private static final Logger log = LoggerFactory.getLogger(ReceiptKeys.class);

    private ReceiptKeys() {
    }

    public static ReceiptTokens load(HeraldConfig config) {
        HeraldConfig.Receipts r = config.receipts();
        byte[] current = r.key().isBlank() ? generated(config.dataDir()) : decode(r.key(), "herald.receipts.key");
        List<ReceiptTokens.Key> older = new ArrayList<>();
        for (String p : r.previousKeys()) {
            int colon = p.indexOf(':');
            if (colon <= 0) {
                throw new StartupException("herald.receipts.previous-keys: an entry is not '<id>:<base64 key>'");
            }
            older.add(key(p.substring(0, colon), decode(p.substring(colon + 1), "herald.receipts.previous-keys")));
        }
        return new ReceiptTokens(key(r.keyId(), current), older);
    }

    private static ReceiptTokens.Key key(String id, byte[] secret) {
        try {
            return new ReceiptTokens.Key(id, secret);
        } catch (IllegalArgumentException e) {
            throw new StartupException("herald.receipts: " + e.getMessage());
        }
    }

    private static byte[] decode(String base64, String where) {
        try {
            byte[] k = Base64.getDecoder().decode(base64.trim());
            if (k.length >= 32) {
                return k;
            }
        } catch (IllegalArgumentException ignored) {
            // reported below
        }
        throw new StartupException(where + ": not a base64 key of at least 32 bytes (e.g. `openssl rand -base64 32`)");
    }

    private static byte[] generated(Path dataDir) {
        Path file = dataDir.resolve("receipt-key");
        KeyFile.Key key = KeyFile.readOrCreate(file, "HERALD_RECEIPT_KEY");
        if (key.generated()) {
            log.warn("generated a receipt signing key in {}: every node must share it (set HERALD_RECEIPT_KEY)", file);
        }
        return decode(key.base64(), file.toString());
    }
}

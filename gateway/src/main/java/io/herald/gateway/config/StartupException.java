package io.herald.gateway.config;

/**
 * A start-up failure the operator can act on. Its message is one line that says what is wrong
 * and how to fix it; {@code HeraldMain} prints it and exits with status 2, without a stack trace.
 */
public final class StartupException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    public StartupException(String message) {
        super(message);
    }

    public StartupException(String message, Throwable cause) {
        super(message, cause);
    }
}

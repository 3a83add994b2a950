package io.herald.gateway;

import org.junit.jupiter.api.extension.ExtensionConfigurationException;
import org.junit.jupiter.api.extension.ExtensionContext;
import org.junit.jupiter.api.extension.ParameterContext;
import org.junit.jupiter.api.extension.ParameterResolver;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;
import java.lang.reflect.Method;
import java.util.Objects;
import java.util.function.Supplier;

/**
 * The started gateway of a test class ({@link TestGateway}: the gateway, its own redis-server and
 * the sandbox peers), handed to tests as a parameter:
 *
 * <pre>{@code
 * @RegisterExtension
 * static final GatewayExtension gateway = GatewayExtension.withConfig("apns { max-attempts = 4 }");
 *
 * @Test
 * void deliversOnce(TestGateway gw) { ... }
 * }</pre>
 *
 * <p>By default one gateway serves the whole class: it starts when the first test (or
 * {@code @BeforeAll} method) asks for it, and closes when the class is done, so the tests of a class
 * share it and must not depend on each other's data (each uses its own users and tokens).
 * {@link #perTest()} gives every test a gateway of its own, closed after that test, for tests that
 * halt, restart or drain it; there a test may replace the class's configuration with {@link Config}.
 *
 * <p>The configuration is HOCON below {@code herald}, as for {@link TestGateway#TestGateway(String)};
 * a supplier is asked when the gateway starts (after the class's {@code @BeforeAll} methods when
 * they do not ask for the gateway themselves), for configuration that names something the class
 * starts first, such as a webhook receiver's port.
 *
 * <p>One per class: two would both answer for a {@code TestGateway} parameter. A test that needs a
 * second gateway, or one configured with what only the test knows, makes its own {@code TestGateway}.
 *
 * <p>Ownership: the gateway lives in the JUnit store of the class (or of the test) and is closed
 * by JUnit when that scope ends. Thread safety: JUnit calls it from the test thread; tests of one
 * class must not run in parallel with a shared gateway.
 */
final class GatewayExtension implements ParameterResolver {
    /** The configuration of one test's gateway, in place of the class's (with {@link #perTest()} only). */
    @Retention(RetentionPolicy.RUNTIME)
    @Target(ElementType.METHOD)
    @interface Config {
        /** HOCON below {@code herald}, as for {@link TestGateway#TestGateway(String)}. */
        String value();
    }

    private static final ExtensionContext.Namespace NAMESPACE =
            ExtensionContext.Namespace.create(GatewayExtension.class);

    private final Supplier<String> config;
    private final boolean perTest;

    private GatewayExtension(Supplier<String> config, boolean perTest) {
        this.config = Objects.requireNonNull(config, "config");
        this.perTest = perTest;
    }

    /** One gateway for the class, configured with {@code config}. */
    static GatewayExtension withConfig(String config) {
        Objects.requireNonNull(config, "config");
        return new GatewayExtension(() -> config, false);
    }

    /** One gateway for the class, configured with what {@code config} returns when it starts. */
    static GatewayExtension withConfig(Supplier<String> config) {
        return new GatewayExtension(config, false);
    }

    /** The same configuration, but a gateway of its own for every test. */
    GatewayExtension perTest() {
        return new GatewayExtension(config, true);
    }

    @Override
    public boolean supportsParameter(ParameterContext parameter, ExtensionContext context) {
        return parameter.getParameter().getType() == TestGateway.class;
    }

    @Override
    public TestGateway resolveParameter(ParameterContext parameter, ExtensionContext context) {
        ExtensionContext scope = perTest ? testScope(context) : classScope(context);
        return scope.getStore(NAMESPACE).getOrComputeIfAbsent(this, k -> start(scope), Started.class).gateway();
    }

    private Started start(ExtensionContext scope) {
        String hocon = config.get();
        Config own = scope.getTestMethod().map(m -> m.getAnnotation(Config.class)).orElse(null);
        if (own != null) {
            hocon = own.value();
        }
        try {
            return new Started(new TestGateway(hocon));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** The class's context, from a test's, a test template's or the class's own. */
    private static ExtensionContext classScope(ExtensionContext context) {
        ExtensionContext c = context;
        while (c.getTestMethod().isPresent()) {
            c = c.getParent().orElseThrow();
        }
        checkNoConfigOn(c);
        return c;
    }

    private static ExtensionContext testScope(ExtensionContext context) {
        if (context.getTestMethod().isEmpty()) {
            throw new ExtensionConfigurationException("GatewayExtension.perTest() starts a gateway per test: "
                    + "ask for it in a test or @BeforeEach method, not in " + context.getDisplayName());
        }
        return context;
    }

    /** {@link Config} on a test of a class whose gateway is shared would be silently ignored: refuse it. */
    private static void checkNoConfigOn(ExtensionContext classContext) {
        for (Method m : classContext.getRequiredTestClass().getDeclaredMethods()) {
            if (m.isAnnotationPresent(Config.class)) {
                throw new ExtensionConfigurationException("@GatewayExtension.Config on " + m.getName()
                        + " needs GatewayExtension...perTest(): the class's gateway is shared by its tests");
            }
        }
    }

    /** What the store holds; JUnit closes it (an AutoCloseable) when its scope ends. */
    private record Started(TestGateway gateway) implements AutoCloseable {
        @Override
        public void close() {
            gateway.close();
        }
    }
}

package io.herald.loadtest;

import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.util.Set;

/**
 * Entry point of {@code loadtest.jar}: {@code java -jar loadtest/target/loadtest.jar [gateway] [options]}.
 *
 * <p>Scenarios are picocli subcommands; {@code gateway} ({@link GatewayScenario}) is the default,
 * so arguments that start with an option run it directly. Exit status: 0 the run passed, 1 it
 * ran but did not pass (see the printed verdict), 2 it could not be set up (usage errors included).
 * Stateless; one run per JVM.
 */
@Command(name = "loadtest", mixinStandardHelpOptions = true, version = "herald loadtest 0.1.0",
        subcommands = {GatewayScenario.class},
        description = "End-to-end load driver for Herald. Scenarios: gateway (default).")
public final class LoadTest implements Runnable {
    private static final Set<String> OWN_OPTIONS = Set.of("-h", "--help", "-V", "--version");

    public static void main(String[] args) {
        String[] effective = args;
        if (args.length == 0 || (args[0].startsWith("-") && !OWN_OPTIONS.contains(args[0]))) {
            effective = new String[args.length + 1];
            effective[0] = "gateway";
            System.arraycopy(args, 0, effective, 1, args.length);
        }
        CommandLine cl = new CommandLine(new LoadTest());
        cl.getSubcommands().values().forEach(c -> c.setExitCodeExceptionMapper(e -> 2));
        cl.setExitCodeExceptionMapper(e -> 2);
        int code = cl.execute(effective);
        System.exit(code);
    }

    @Override
    public void run() {
        // Only reached with no subcommand, which main() never produces; kept for embedding.
        throw new CommandLine.ParameterException(new CommandLine(this), "no scenario given (expected: gateway)");
    }
}

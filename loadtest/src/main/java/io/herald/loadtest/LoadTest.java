package io.herald.loadtest;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/**
 * Entry point of {@code loadtest.jar}: {@code java -jar loadtest/target/loadtest.jar SCENARIO [options]}.
 *
 * <p>Scenarios are picocli subcommands: {@code gateway}, {@code raw-apns}, {@code compare},
 * {@code campaign}, {@code crash}, {@code soak} ({@link Scenarios}), {@code audience} ({@link
 * Audience}), {@code simulate} ({@link Simulate}) and {@code peer} ({@link PeerMain},
 * the provider peer process the others start). Exit status: 0 passed, 1 ran but did not pass
 * (see the printed verdict), 2 could not be set up (usage errors included). Stateless; one run
 * per JVM.
 */
@Command(name = "loadtest", mixinStandardHelpOptions = true, version = "herald loadtest 0.1.0",
        subcommands = {Scenarios.Gateway.class, Scenarios.RawApns.class, Scenarios.Compare.class, Scenarios.CampaignRun.class, Audience.class,
            Simulate.class, TriggerLoad.class,
            Scenarios.Crash.class, Scenarios.Soak.class, PeerMain.class},
        description = "Load and fault driver for Herald: gateway, raw-apns, compare, campaign, audience, simulate, crash, "
                + "soak, peer.")
public final class LoadTest implements Runnable {
    public static void main(String[] args) {
        CommandLine cl = new CommandLine(new LoadTest());
        cl.getSubcommands().values().forEach(c -> c.setExitCodeExceptionMapper(e -> 2));
        cl.setExitCodeExceptionMapper(e -> 2);
        System.exit(cl.execute(args));
    }

    @Override
    public void run() {
        new CommandLine(this).usage(System.out);
    }
}

package io.herald.gateway.sandbox;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * Runs the SMSC sandbox peer standalone, in a process of its own (demos, load tests). Prints
 * {@code sandbox smsc ready on 127.0.0.1:PORT} and, on exit (SIGTERM), how many submit_sm it
 * accepted and how many receipts it sent. Per-number recording is off (counters only) so long
 * runs do not grow memory.
 */
@Command(name = "herald-sandbox-smsc", mixinStandardHelpOptions = true,
        description = "Local SMSC peer (SMPP 3.4 on 127.0.0.1) for tests, demos and load tests.")
public final class SandboxSmscMain implements Callable<Integer> {
    @Option(names = "--port", description = "Port on 127.0.0.1 (0 = a free one). Default: ${DEFAULT-VALUE}")
    int port = 0;

    @Option(names = "--system-id", description = "Required system id for binds (default: any).")
    String systemId;

    @Option(names = "--password", description = "Required password for binds (default: any).")
    String password;

    @Option(names = "--receipt-delay-ms", description = "Delay before each delivery receipt. Default: ${DEFAULT-VALUE}")
    long receiptDelayMs = 50;

    @Option(names = "--hex-ids", description = "Answer message ids in hex (SMPP 3.3 style); receipts stay decimal.")
    boolean hexIds;

    public static void main(String[] args) {
        System.exit(new CommandLine(new SandboxSmscMain()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        SandboxSmsc smsc = SandboxSmsc.start(port)
                .credentials(systemId, password)
                .receiptDelay(Duration.ofMillis(receiptDelayMs))
                .hexIds(hexIds)
                .track(false);
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("sandbox smsc accepted " + smsc.acceptedTotal() + " of " + smsc.submitsTotal()
                    + " submit_sm, sent " + smsc.receiptsSent() + " receipts");
            smsc.close();
            stop.countDown();
        }));
        System.out.println("sandbox smsc ready on 127.0.0.1:" + smsc.port());
        System.out.flush();
        stop.await();
        return 0;
    }
}

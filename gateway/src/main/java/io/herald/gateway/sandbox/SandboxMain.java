package io.herald.gateway.sandbox;

import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * Runs the APNs sandbox peer standalone, in a process of its own (the load test does this so the
 * peer's CPU is not the gateway's). Prints {@code sandbox apns ready on 127.0.0.1:PORT cert=FILE}
 * and, on exit (SIGTERM), the number of notifications it accepted.
 */
@Command(name = "herald-sandbox", mixinStandardHelpOptions = true,
        description = "Local APNs peer (HTTP/2 + TLS on 127.0.0.1) for tests, demos and load tests.")
public final class SandboxMain implements Callable<Integer> {
    @Option(names = "--port", description = "Port on 127.0.0.1 (0 = a free one). Default: ${DEFAULT-VALUE}")
    int port = 0;

    @Option(names = "--cert-out", description = "Where to copy the peer's certificate (PEM) for clients.")
    Path certOut;

    public static void main(String[] args) {
        System.exit(new CommandLine(new SandboxMain()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        SandboxApns apns = SandboxApns.start(port);
        apns.onAccepted(id -> { }, false);
        Path cert = apns.certificateFile().toPath();
        if (certOut != null) {
            Files.copy(cert, certOut, StandardCopyOption.REPLACE_EXISTING);
            cert = certOut;
        }
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("sandbox apns accepted " + apns.acceptedTotal() + " of " + apns.requestsTotal());
            apns.close();
            stop.countDown();
        }));
        System.out.println("sandbox apns ready on 127.0.0.1:" + apns.port() + " cert=" + cert);
        System.out.flush();
        stop.await();
        return 0;
    }
}

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
 * Runs the FCM sandbox peer standalone, in a process of its own (so a load test's peer does not
 * share the gateway's CPU). Prints {@code sandbox fcm ready on 127.0.0.1:PORT
 * token=http://127.0.0.1:PORT/token} (plus where the certificate and the service-account key
 * were written) and, on exit (SIGTERM), how many requests it accepted. Not thread-safe by itself:
 * a command-line entry point.
 */
@Command(name = "herald-sandbox-fcm", mixinStandardHelpOptions = true,
        description = "Local FCM HTTP v1 peer (HTTP/2 + TLS) and OAuth2 token endpoint on 127.0.0.1.")
public final class SandboxFcmMain implements Callable<Integer> {
    @Option(names = "--port", description = "FCM port on 127.0.0.1 (0 = a free one). Default: ${DEFAULT-VALUE}")
    int port = 0;

    @Option(names = "--token-port", description = "Token endpoint port on 127.0.0.1 (0 = a free one). Default: ${DEFAULT-VALUE}")
    int tokenPort = 0;

    @Option(names = "--max-streams", description = "SETTINGS_MAX_CONCURRENT_STREAMS advertised. Default: ${DEFAULT-VALUE}")
    int maxStreams = 1000;

    @Option(names = "--project", description = "Project id of the service-account key written. Default: ${DEFAULT-VALUE}")
    String project = "herald-sandbox";

    @Option(names = "--service-account-dir", description = "Where to write the service-account JSON key for clients.")
    Path serviceAccountDir;

    @Option(names = "--cert-out", description = "Where to copy the peer's certificate (PEM) for clients.")
    Path certOut;

    public static void main(String[] args) {
        System.exit(new CommandLine(new SandboxFcmMain()).execute(args));
    }

    @Override
    public Integer call() throws Exception {
        SandboxFcm fcm = SandboxFcm.start(port, tokenPort, maxStreams);
        fcm.onAccepted(token -> { }, false);
        Path cert = fcm.certificateFile().toPath();
        if (certOut != null) {
            Files.copy(cert, certOut, StandardCopyOption.REPLACE_EXISTING);
            cert = certOut;
        }
        Path key = fcm.writeServiceAccountJson(serviceAccountDir != null ? serviceAccountDir : cert.getParent(), project);
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            System.out.println("sandbox fcm accepted " + fcm.acceptedTotal() + " of " + fcm.requestsTotal()
                    + " (access tokens issued: " + fcm.tokensIssued() + ")");
            fcm.close();
            stop.countDown();
        }));
        System.out.println("sandbox fcm ready on 127.0.0.1:" + fcm.port() + " token=" + fcm.tokenUri()
                + " cert=" + cert + " service-account=" + key);
        System.out.flush();
        stop.await();
        return 0;
    }
}

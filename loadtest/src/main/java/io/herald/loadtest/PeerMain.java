package io.herald.loadtest;

import io.herald.gateway.sandbox.SandboxApns;
import io.herald.gateway.sandbox.SandboxFcm;
import io.herald.gateway.sandbox.SandboxSmsc;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.BufferedOutputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.Base64;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The {@code peer} command: one provider peer (APNs, FCM or SMSC from the gateway's sandbox
 * package) in a process of its own, which reports every notification it accepted to the load
 * driver.
 *
 * <p>Every message the driver sends carries a marker ({@link Tally#marker}) in its text; the peer
 * finds it in the APNs payload, the FCM request body or the SMS text and streams one fixed-size
 * record per accepted notification (run, sequence number, intended send time, arrival time, all
 * in epoch microseconds from the same machine clock) over a loopback TCP connection the driver
 * opens to the report port. Notifications without a marker are counted and printed at exit.
 * Records produced while no driver is connected are dropped and counted ({@code undelivered}) —
 * the driver connects before it sends.
 *
 * <p>Ready line: {@code peer KIND ready port=P report=R dir=D}; the files clients need are in D
 * ({@code apns-cert.pem} + {@code apns-key.p8}, team {@link #TEAM_ID} key {@link #KEY_ID};
 * {@code fcm-cert.pem} + {@code fcm-service-account.json}; the SMSC takes system id
 * {@code herald}, password {@code sandbox}). Runs until SIGTERM. Thread-safe: records are written
 * under one lock and flushed every 5 ms.
 */
@Command(name = "peer", mixinStandardHelpOptions = true,
        description = "Run one provider peer (apns, fcm or sms) that reports what it accepted to the load driver.")
public final class PeerMain implements Callable<Integer> {
    static final String TEAM_ID = "HERALDTEAM";
    static final String KEY_ID = "HERALDKEY1";
    /** Bytes per record: int run, long seq, long intended micros, long arrival micros. */
    static final int RECORD_BYTES = 4 + 8 + 8 + 8;

    /** Which peer. */
    enum Kind { apns, fcm, sms }

    @Option(names = "--kind", required = true, description = "apns, fcm or sms")
    Kind kind;

    @Option(names = "--dir", required = true, description = "Directory for the certificate and key files.")
    Path dir;

    private final Object lock = new Object();
    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong unmarked = new AtomicLong();
    private final AtomicLong undelivered = new AtomicLong();
    private volatile DataOutputStream out;

    @Override
    public Integer call() throws Exception {
        Files.createDirectories(dir);
        AutoCloseable peer;
        int port;
        switch (kind) {
            case apns -> {
                SandboxApns apns = SandboxApns.start(0);
                apns.onAccepted(id -> { }, false);
                apns.onPayload(this::arrived);
                Files.copy(apns.certificateFile().toPath(), dir.resolve("apns-cert.pem"),
                        StandardCopyOption.REPLACE_EXISTING);
                writePkcs8(apns.signingKey().getEncoded(), dir.resolve("apns-key.p8"));
                peer = apns;
                port = apns.port();
            }
            case fcm -> {
                SandboxFcm fcm = SandboxFcm.start();
                fcm.onAccepted(t -> { }, false);
                fcm.onPayload(this::arrived);
                Files.copy(fcm.certificateFile().toPath(), dir.resolve("fcm-cert.pem"),
                        StandardCopyOption.REPLACE_EXISTING);
                Path sa = fcm.writeServiceAccountJson(dir, "herald-load");
                Files.move(sa, dir.resolve("fcm-service-account.json"), StandardCopyOption.REPLACE_EXISTING);
                peer = fcm;
                port = fcm.port();
            }
            case sms -> {
                SandboxSmsc smsc = SandboxSmsc.start(0).credentials("herald", "sandbox").track(false);
                smsc.onText(this::arrived);
                peer = smsc;
                port = smsc.port();
            }
            default -> throw new IllegalStateException(kind.toString());
        }
        ServerSocket report = new ServerSocket(0, 4, InetAddress.getLoopbackAddress());
        Thread acceptor = new Thread(() -> acceptDrivers(report), "peer-report");
        acceptor.setDaemon(true);
        acceptor.start();
        ScheduledExecutorService flusher = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "peer-flush");
            t.setDaemon(true);
            return t;
        });
        flusher.scheduleWithFixedDelay(this::flush, 5, 5, TimeUnit.MILLISECONDS);
        CountDownLatch stop = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            flusher.shutdown();
            flush();
            System.out.printf("peer %s accepted %d (%d without a marker, %d not reported: no driver connected)%n",
                    kind, accepted.get(), unmarked.get(), undelivered.get());
            try {
                peer.close();
                report.close();
            } catch (Exception ignored) {
                // exiting anyway
            }
            stop.countDown();
        }, "peer-stop"));
        System.out.println("peer " + kind + " ready port=" + port + " report=" + report.getLocalPort() + " dir="
                + dir.toAbsolutePath());
        System.out.flush();
        stop.await();
        return 0;
    }

    private static void writePkcs8(byte[] der, Path file) throws IOException {
        String pem = "-----BEGIN PRIVATE KEY-----\n"
                + Base64.getMimeEncoder(64, "\n".getBytes(StandardCharsets.US_ASCII)).encodeToString(der)
                + "\n-----END PRIVATE KEY-----\n";
        Files.writeString(file, pem, StandardCharsets.US_ASCII);
    }

    private void acceptDrivers(ServerSocket report) {
        while (!report.isClosed()) {
            try {
                Socket s = report.accept();
                s.setTcpNoDelay(true);
                synchronized (lock) {
                    if (out != null) {
                        try {
                            out.close();
                        } catch (IOException ignored) {
                            // the previous driver is gone
                        }
                    }
                    out = new DataOutputStream(new BufferedOutputStream(s.getOutputStream(), 1 << 16));
                }
            } catch (IOException e) {
                return; // closed at exit
            }
        }
    }

    private void arrived(String text) {
        long now = Tally.nowMicros();
        accepted.incrementAndGet();
        long[] m = Tally.parseMarker(text);
        if (m == null) {
            unmarked.incrementAndGet();
            return;
        }
        synchronized (lock) {
            DataOutputStream o = out;
            if (o == null) {
                undelivered.incrementAndGet();
                return;
            }
            try {
                o.writeInt((int) m[0]);
                o.writeLong(m[1]);
                o.writeLong(m[2]);
                o.writeLong(now);
            } catch (IOException e) {
                undelivered.incrementAndGet();
                out = null;
            }
        }
    }

    private void flush() {
        synchronized (lock) {
            if (out != null) {
                try {
                    out.flush();
                } catch (IOException e) {
                    out = null;
                }
            }
        }
    }
}

package io.herald.gateway;

import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.PrintStream;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/**
 * The gateway's command line. Prints exactly one line {@code herald ready on http://HOST:PORT}
 * when it accepts traffic, stops gracefully on SIGTERM/SIGINT, and on a misconfiguration (a bad
 * option, setting or environment variable) prints one line {@code herald: cannot start: ...}, no
 * stack trace, and exits with status 2. Options override environment variables, which override
 * the {@code --config} file (see {@link HeraldConfig}).
 */
@Command(name = "herald", mixinStandardHelpOptions = true, version = "herald 0.1.0",
        description = "High-throughput push gateway. With no options: embedded Redis, sandbox APNs peer, "
                + "127.0.0.1:8080, data in ./data.")
public final class HeraldMain implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(HeraldMain.class);

    @Option(names = "--config", description = "HOCON config file (see README for every key).")
    Path config;

    @Option(names = "--host", description = "Listen address (env HERALD_HOST). Default 127.0.0.1.")
    String host;

    @Option(names = "--port", description = "Listen port, 0 = any free port (env HERALD_PORT). Default 8080.")
    Integer port;

    @Option(names = "--data-dir", description = "Data directory: embedded Redis AOF, generated API keys "
            + "(env HERALD_DATA_DIR). Default ./data.")
    Path dataDir;

    @Option(names = "--redis-url", description = "Use this Redis instead of the embedded one (env REDIS_URL).")
    String redisUrl;

    @Option(names = "--api-key", paramLabel = "APP:KEY[:roles=a,b]", description = "An API key for an app, in clear, "
            + "hashed on load (env HERALD_API_KEY), with its roles (default send,manage,read). Repeatable.")
    List<String> apiKeys = new ArrayList<>();

    @Option(names = "--sandbox", description = "auto | true | false: deliver APNs to the local peer "
            + "(env HERALD_SANDBOX). Default auto.")
    String sandbox;

    private final Map<String, String> env;
    private final PrintStream out;
    private final PrintStream err;

    HeraldMain(Map<String, String> env, PrintStream out, PrintStream err) {
        this.env = env;
        this.out = out;
        this.err = err;
    }

    public static void main(String[] args) {
        int code = execute(args, System.getenv(), System.out, System.err);
        if (code != 0) {
            System.exit(code);
        }
    }

    /**
     * Runs the command line with {@code env} as the environment, printing to {@code out} and
     * {@code err}; returns the exit status (blocks until the gateway stops once it has started).
     */
    static int execute(String[] args, Map<String, String> env, PrintStream out, PrintStream err) {
        CommandLine cmd = new CommandLine(new HeraldMain(env, out, err));
        cmd.setOut(new PrintWriter(out, true));
        cmd.setErr(new PrintWriter(err, true));
        cmd.setParameterExceptionHandler((e, a) -> {
            err.println("herald: cannot start: " + oneLine(e.getMessage()) + " (see herald --help)");
            return 2;
        });
        return cmd.execute(args);
    }

    @Override
    public Integer call() throws Exception {
        Herald herald;
        try {
            Map<String, Object> overrides = new LinkedHashMap<>();
            if (host != null) {
                overrides.put("http.host", host);
            }
            if (port != null) {
                overrides.put("http.port", port);
            }
            if (dataDir != null) {
                overrides.put("data-dir", dataDir.toString());
            }
            if (redisUrl != null) {
                overrides.put("redis.url", redisUrl);
            }
            if (sandbox != null) {
                overrides.put("sandbox", sandbox);
            }
            List<HeraldConfig.InitialKey> keys = new ArrayList<>();
            for (String k : apiKeys) {
                keys.add(HeraldConfig.InitialKey.parse(k, "--api-key"));
            }
            herald = Herald.start(HeraldConfig.load(config, env, overrides, keys));
        } catch (StartupException e) {
            err.println("herald: cannot start: " + oneLine(e.getMessage()));
            return 2;
        } catch (RuntimeException e) {
            // Herald.start maps what it knows; anything else is a bug, still told in one line.
            log.debug("start-up failed", e);
            err.println("herald: cannot start: unexpected " + e.getClass().getSimpleName() + ": "
                    + oneLine(String.valueOf(e.getMessage())) + " (a bug: report it with the output of "
                    + "HERALD_LOG_LEVEL=DEBUG)");
            return 2;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            herald.close();
            stopped.countDown();
        }, "herald-shutdown"));
        out.println("herald ready on " + herald.baseUrl());
        out.flush();
        stopped.await();
        return 0;
    }

    private static String oneLine(String s) {
        return s.replaceAll("\\s*\\R\\s*", " ").trim();
    }
}

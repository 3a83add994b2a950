package io.herald.gateway;

import io.herald.gateway.config.HeraldConfig;
import io.herald.gateway.config.StartupException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

/**
 * Every misconfiguration stops the start with a {@link StartupException} whose message is one
 * line naming the setting, and {@code herald} prints exactly that line (no stack trace) and exits 2.
 * {@link HeraldMain} runs in-process with its output captured.
 */
@Timeout(120)
class StartupErrorsTest {

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', textBlock = """
            SMS window over 1000          | herald.app-defaults.sms.window = 1001                                 | herald.app-defaults.sms.window
            SMS window of one app         | herald.apps.shop.sms.window = 1001                                     | herald.apps.shop.sms.window
            malformed webhook URL         | herald.apps.shop.webhook { url = "http://exa mple.com/hook", secret = "0123456789abcdef0123" } | herald.apps.shop.webhook.url
            webhook backoff max below base | herald.apps.shop.webhook { url = "https://example.com/h", secret = "0123456789abcdef0123", backoff-base = 10s, backoff-max = 1s } | herald.apps.shop.webhook.backoff-max
            capacity below a batch        | herald.pipeline.capacity = 100                                         | herald.pipeline.capacity
            unknown key                   | herald.pipline.capacity = 100000                                       | herald.pipline
            unknown key of an app         | herald.apps.shop.rate-limit.rtae = 5                                   | herald.apps.shop.rate-limit.rtae
            wrong type                    | herald.http.max-items-per-batch = lots                                 | herald.http.max-items-per-batch
            zero scheduler interval       | herald.scheduler.interval = 0ms                                        | herald.scheduler.interval
            FCM base URL not https        | herald.app-defaults.fcm.base-url = "ftp://fcm.example.com"             | herald.app-defaults.fcm.base-url
            """)
    void aBadSettingFailsTheStartWithOneLineNamingIt(String what, String hocon, String setting, @TempDir Path dir)
            throws Exception {
        Path conf = dir.resolve("herald.conf");
        Files.writeString(conf, hocon + "\n");
        Path data = dir.resolve("data");

        Throwable thrown = catchThrowable(() -> {
            try (Herald started = Herald.start(HeraldConfig.load(conf, Map.of(),
                    Map.of("data-dir", data.toString(), "http.port", 0), List.of()))) {
                // reaching here is the failure: the start should have been refused
            }
        });
        assertThat(thrown).as(what).isInstanceOf(StartupException.class);
        assertThat(thrown.getMessage()).as(what).contains(setting).doesNotContain("\n");

        Run run = main("--config", conf.toString(), "--data-dir", data.toString(), "--port", "0");
        assertThat(run.status).as(what).isEqualTo(2);
        assertThat(run.out).as(what).isEmpty();
        assertThat(run.errLines()).as(what).singleElement().asString()
                .startsWith("herald: cannot start: ").contains(setting);
    }

    @Test
    void aBadCommandLineOptionIsOneLine(@TempDir Path dir) {
        Run run = main("--port", "eighty", "--data-dir", dir.toString());
        assertThat(run.status).isEqualTo(2);
        assertThat(run.errLines()).singleElement().asString().startsWith("herald: cannot start: ").contains("--port");
    }

    /** Output of one in-process run of {@code herald}. */
    record Run(int status, String out, String err) {
        List<String> errLines() {
            return err.lines().toList();
        }
    }

    static Run main(String... args) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        int status = HeraldMain.execute(args, Map.of(), new PrintStream(out, true, StandardCharsets.UTF_8),
                new PrintStream(err, true, StandardCharsets.UTF_8));
        return new Run(status, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
    }
}

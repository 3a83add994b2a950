package io.herald.gateway;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.herald.gateway.sandbox.SandboxApns;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestInfo;
import org.junit.jupiter.api.Timeout;
import org.openqa.selenium.By;
import org.openqa.selenium.OutputType;
import org.openqa.selenium.WebElement;
import org.openqa.selenium.chrome.ChromeOptions;
import org.openqa.selenium.logging.LogEntry;
import org.openqa.selenium.logging.LogType;
import org.openqa.selenium.logging.LoggingPreferences;
import org.openqa.selenium.remote.RemoteWebDriver;
import org.openqa.selenium.support.ui.Select;
import org.openqa.selenium.support.ui.WebDriverWait;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.logging.Level;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static io.herald.gateway.TestGateway.JSON;
import static org.assertj.core.api.Assertions.assertThat;

/**
 * The operator console driven in headless Chromium (Debian's {@code chromium} and {@code
 * chromium-driver}; {@code .ci/run} installs them) against a real gateway: sign-in, the audience
 * estimate following the rule, a campaign made from a template in the browser, submitted by one
 * key, refused to its maker's approval, approved by a second key and watched to its delivered
 * count, a guard's pause shown with its reason and acknowledged, the views a key without
 * {@code approve} gets, the policy's If-Match flow, the user lookup with recent messages. Every
 * page must load without a Content-Security-Policy violation.
 *
 * <p>ChromeDriver is started on port 0 and tells its port (no port is picked and released). A
 * failing test leaves a screenshot and the page source under {@code target/console-screenshots}.
 */
@Timeout(300)
class ConsoleIT {
    private static final Path SHOTS = Path.of("target", "console-screenshots");
    private static Process chromedriver;
    private static Path profile;
    private static RemoteWebDriver driver;

    @BeforeAll
    static void browser() throws Exception {
        Path chromium = firstExisting("/usr/bin/chromium", "/usr/bin/chromium-browser");
        Path driverBin = firstExisting("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver");
        Assumptions.assumeTrue(chromium != null && driverBin != null,
                "no Chromium here: install Debian's chromium and chromium-driver (.ci/run does) to run the console tests");
        chromedriver = new ProcessBuilder(driverBin.toString(), "--port=0").redirectErrorStream(true).start();
        BufferedReader out = new BufferedReader(new InputStreamReader(chromedriver.getInputStream(), StandardCharsets.UTF_8));
        Pattern started = Pattern.compile("started successfully on port (\\d+)");
        int port = -1;
        for (String line; port < 0 && (line = out.readLine()) != null; ) {
            Matcher m = started.matcher(line);
            if (m.find()) {
                port = Integer.parseInt(m.group(1));
            }
        }
        assertThat(port).as("chromedriver said its port").isPositive();
        Thread drain = new Thread(() -> out.lines().forEach(l -> { }), "chromedriver-output");
        drain.setDaemon(true);
        drain.start();
        profile = Files.createTempDirectory("herald-chromium");
        ChromeOptions options = new ChromeOptions();
        options.setBinary(chromium.toFile());
        options.addArguments("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                "--window-size=1280,1000", "--user-data-dir=" + profile);
        LoggingPreferences logs = new LoggingPreferences();
        logs.enable(LogType.BROWSER, Level.ALL);
        options.setCapability("goog:loggingPrefs", logs);
        driver = new RemoteWebDriver(new URL("http://127.0.0.1:" + port), options);
        driver.manage().timeouts().scriptTimeout(Duration.ofSeconds(20));
    }

    @AfterAll
    static void close() throws Exception {
        if (driver != null) {
            driver.quit();
        }
        if (chromedriver != null) {
            chromedriver.destroy();
            chromedriver.waitFor(10, TimeUnit.SECONDS);
        }
        if (profile != null) {
            try (var files = Files.walk(profile)) {
                files.sorted(java.util.Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    @Test
    void signInAndTheAudienceEstimateFollowsTheRule(TestInfo info) throws Exception {
        try (TestGateway gw = new TestGateway("")) {
            users(gw, "a", 20, false);
            shot(info, () -> {
                open(gw, "/console");
                signIn("hk_not-a-key");
                assertThat(waitFor(By.cssSelector("#sign-in-result .error")).getAttribute("data-code")).isEqualTo("unauthorized");
                signIn(gw.key);
                waitFor(By.id("today"));
                assertThat(text(By.id("who"))).contains(gw.app).contains("approve");
                assertThat(driver.getCurrentUrl()).doesNotContain(gw.key);
                assertThat(driver.executeScript("return sessionStorage.getItem('herald.key')")).isEqualTo(gw.key);

                click(By.cssSelector("a[data-view=audiences]"));
                WebElement rule = waitFor(By.id("rule"));
                rule.sendKeys("tag:vip");
                until(() -> "20".equals(textOrNull(By.id("estimate-count"))));
                rule.sendKeys(" AND attr.city = \"Berlin\"");
                until(() -> "10".equals(textOrNull(By.id("estimate-count"))));
                assertThat(driver.findElements(By.cssSelector("#estimate-sample a"))).hasSize(10);
                rule.sendKeys(" AND");
                WebElement error = waitFor(By.cssSelector("#estimate .error"));
                assertThat(error.getAttribute("data-code")).isEqualTo("invalid_rule");
                assertThat(error.getText()).contains("column").contains("^");
                rule.sendKeys(" tag:a-0");
                until(() -> "1".equals(textOrNull(By.id("estimate-count"))));
                waitFor(By.id("audience-name")).sendKeys("Berliners");
                click(By.id("save-audience"));
                until(() -> text(By.id("audience-list")).contains("Berliners"));
                noCspViolations();
            });
        }
    }

    @Test
    void aCampaignIsMadeSubmittedApprovedBySomeoneElseAndDelivered(TestInfo info) throws Exception {
        try (TestGateway gw = new TestGateway("")) {
            List<String> members = users(gw, "c", 20, true);
            assertThat(gw.post("/v1/apps/" + gw.app + "/templates", "{\"id\":\"winter\",\"defaultLocale\":\"en\",\"locales\":"
                    + "{\"en\":{\"push\":{\"title\":\"Sale\",\"body\":\"Hi {{user.firstName}}\"},\"sms\":{\"body\":\"Hi {{user.firstName}}, boots -20%\"}}}}")
                    .status()).isEqualTo(201);
            String maker = key(gw, "manage", "approve", "read");
            String approver = key(gw, "approve", "read");
            String looker = key(gw, "manage", "read");
            shot(info, () -> {
                open(gw, "/console");
                signIn(maker);
                click(By.cssSelector("a[data-view=campaigns]"));
                click(By.id("new-campaign"));
                waitFor(By.id("c-name")).sendKeys("Winter boots");
                driver.findElement(By.id("c-rule")).sendKeys("tag:vip AND NOT tag:nobody");
                new Select(driver.findElement(By.id("c-template"))).selectByValue("winter");
                new Select(driver.findElement(By.id("c-channel"))).selectByValue("sms");
                driver.findElement(By.id("c-category")).sendKeys("promo");
                click(By.id("create-campaign"));
                until(() -> "draft".equals(textOrNull(By.id("campaign-state"))));
                String id = driver.getCurrentUrl().replaceAll(".*#/campaigns/", "");
                click(By.id("action-submit"));
                until(() -> "pending_approval".equals(textOrNull(By.id("campaign-state"))));
                click(By.id("action-approve"));
                WebElement refused = waitFor(By.cssSelector("#action-result .error"));
                assertThat(refused.getAttribute("data-code")).isEqualTo("forbidden");
                assertThat(refused.getText()).startsWith("403");
                assertThat(text(By.id("campaign-state"))).isEqualTo("pending_approval");

                signOutAndIn(looker);
                open(gw, "/console#/campaigns/" + id);
                until(() -> "pending_approval".equals(textOrNull(By.id("campaign-state"))));
                waitFor(By.cssSelector("#campaign-actions h2"));
                assertThat(driver.findElements(By.id("action-approve"))).as("no approve button without the role").isEmpty();
                Object status = driver.executeAsyncScript("const done = arguments[arguments.length - 1];"
                        + "fetch('/v1/apps/" + gw.app + "/campaigns/" + id + "/approve', {method: 'POST', headers:"
                        + " {'Authorization': 'Bearer ' + sessionStorage.getItem('herald.key')}}).then(r => done(r.status));");
                assertThat(((Number) status).intValue()).as("the API refuses it too").isEqualTo(403);

                signOutAndIn(approver);
                open(gw, "/console#/campaigns/" + id);
                click(By.id("action-reject"));
                assertThat(waitFor(By.cssSelector("#action-result .error")).getText()).as("a reason is required").contains("reason");
                waitFor(By.id("reject-reason")).sendKeys("say which boots");
                click(By.id("action-reject"));
                until(() -> "draft".equals(textOrNull(By.id("campaign-state"))));
                assertThat(text(By.id("campaign-history"))).contains("say which boots");
                signOutAndIn(maker);
                open(gw, "/console#/campaigns/" + id);
                click(By.id("action-submit"));
                until(() -> "pending_approval".equals(textOrNull(By.id("campaign-state"))));
                signOutAndIn(approver);
                open(gw, "/console#/campaigns/" + id);
                click(By.id("action-approve"));
                until(() -> "completed".equals(textOrNull(By.id("campaign-state"))));
                until(() -> "20".equals(textOrNull(By.cssSelector("#funnel [data-step=delivered] .v"))));
                assertThat(text(By.cssSelector("#funnel [data-step=submitted] .v"))).isEqualTo("20");
                assertThat(text(By.id("progress"))).contains("fanned out 20 of 20");
                assertThat(text(By.id("campaign-history"))).contains("approve").contains("submit");
                screenshot("campaign");

                open(gw, "/console#/users/" + members.get(0));
                WebElement recent = waitFor(By.cssSelector("#recent-messages table"));
                assertThat(recent.getText()).contains("delivered");
                click(By.cssSelector("#recent-messages tbody tr"));
                until(() -> text(By.id("message-history")).contains("delivered"));
                assertThat(text(By.id("profile"))).contains("*").doesNotContain("+4917000000");
                assertThat(text(By.id("user-tags"))).contains("vip");
                screenshot("user");
                noCspViolations();
            });
        }
    }

    @Test
    void aGuardsPauseShowsItsReasonAndResumeAcknowledgesIt(TestInfo info) throws Exception {
        try (TestGateway gw = new TestGateway("")) {
            ArrayNode users = JSON.createArrayNode();
            for (int i = 0; i < 400; i++) {
                String token = TestGateway.token();
                ObjectNode u = users.addObject().put("user", "g-" + i);
                u.putArray("tags").add("vip");
                u.putArray("devices").addObject().put("id", "phone").put("platform", "apns").put("token", token);
                if (i % 2 == 1) {
                    gw.sandbox().scriptAlways(token, SandboxApns.Answer.PAYLOAD_TOO_LARGE);
                }
            }
            assertThat(gw.post("/v1/apps/" + gw.app + "/users", JSON.createObjectNode().set("users", users).toString())
                    .status()).isEqualTo(200);
            assertThat(gw.post("/v1/apps/" + gw.app + "/templates", "{\"id\":\"hello\",\"defaultLocale\":\"en\",\"locales\":"
                    + "{\"en\":{\"push\":{\"title\":\"Sale\",\"body\":\"Hi\"}}}}").status()).isEqualTo(201);
            TestGateway.Response c = gw.post("/v1/apps/" + gw.app + "/campaigns", "{\"name\":\"guarded\",\"audience\":{\"rule\":"
                    + "\"tag:vip\"},\"content\":{\"template\":\"hello\"},\"throttle\":{\"perMinute\":1200},\"guards\":"
                    + "[{\"metric\":\"failure\",\"window\":\"5m\",\"minVolume\":20,\"pauseAt\":0.3}]}");
            String id = c.json().get("id").asText();
            assertThat(gw.post("/v1/apps/" + gw.app + "/campaigns/" + id + "/submit", "").status()).isEqualTo(200);
            String approver = key(gw, "approve", "read");
            assertThat(gw.send("POST", "/v1/apps/" + gw.app + "/campaigns/" + id + "/approve", "", approver).status()).isEqualTo(200);
            shot(info, () -> {
                open(gw, "/console");
                signIn(gw.key);
                open(gw, "/console#/campaigns/" + id);
                until(() -> "paused".equals(textOrNull(By.id("campaign-state"))));
                WebElement tripped = waitFor(By.id("guard-tripped"));
                assertThat(tripped.getText()).contains("Paused by a guard: failure").contains(">= pauseAt 30");
                screenshot("guard");
                waitFor(By.id("resume-reason")).sendKeys("bad tokens cleaned up");
                click(By.id("action-resume"));
                until(() -> text(By.id("action-result")).contains("resume: now running"));
                assertThat(text(By.id("campaign-history"))).contains("bad tokens cleaned up").contains("herald:guard");
                click(By.cssSelector("a[data-view=overview]"));
                until(() -> text(By.id("errors")).contains("payload_too_large"));
                assertThat(Long.parseLong(text(By.cssSelector("#today [data-tile=failed] .n")).replace(",", ""))).isPositive();
                noCspViolations();
            });
        }
    }

    @Test
    void theOtherViewsShowTheirDataThePolicyKeepsToIfMatchAndKeysAreIssuedAndRevoked(TestInfo info) throws Exception {
        try (TestGateway gw = new TestGateway("")) {
            users(gw, "o", 3, false);
            assertThat(gw.post("/v1/apps/" + gw.app + "/templates", "{\"id\":\"greet\",\"defaultLocale\":\"en\",\"locales\":"
                    + "{\"en\":{\"push\":{\"title\":\"Hi {{user.firstName}}\",\"body\":\"b\"}},\"de\":{\"push\":{\"title\":"
                    + "\"Hallo {{user.firstName}}\",\"body\":\"b\"}}}}").status()).isEqualTo(201);
            assertThat(gw.post("/v1/apps/" + gw.app + "/templates", "{\"id\":\"greet2\",\"locales\":{\"en\":{\"push\":"
                    + "{\"title\":\"Hey {{user.firstName}}\",\"body\":\"b\"}}}}").status()).isEqualTo(201);
            assertThat(gw.post("/v1/apps/" + gw.app + "/triggers", "{\"id\":\"pay\",\"name\":\"Payment reminder\",\"on\":"
                    + "{\"event\":\"order_placed\"},\"unless\":{\"event\":\"order_paid\",\"within\":\"10m\"},\"delay\":\"10m\","
                    + "\"content\":{\"title\":\"Pay\",\"body\":\"now\"}}").status()).isEqualTo(201);
            shot(info, () -> {
                open(gw, "/console");
                signIn(gw.key);
                waitFor(By.cssSelector("#today [data-tile=sent]"));
                click(By.cssSelector("a[data-view=templates]"));
                until(() -> text(By.id("template-list")).contains("greet"));
                click(By.xpath("//div[@id='template-list']//tr[td[1][text()='greet']]"));
                until(() -> driver.findElement(By.id("template-json")).getAttribute("value").contains("Hallo"));
                waitFor(By.id("preview-user")).sendKeys("o-1");
                driver.findElement(By.id("preview-locale")).sendKeys("de");
                click(By.id("preview-button"));
                until(() -> text(By.id("preview")).contains("Hallo Ann1"));
                WebElement json = driver.findElement(By.id("template-json"));
                json.clear();
                json.sendKeys("{\"id\":\"broken\",\"locales\":{\"en\":{\"push\":{\"title\":\"{{usr.name}}\",\"body\":\"b\"}}}}");
                click(By.id("save-template"));
                WebElement bad = waitFor(By.cssSelector("#template-result .error"));
                assertThat(bad.getAttribute("data-code")).isEqualTo("invalid_template");
                assertThat(bad.getText()).contains("usr.name").contains("^");

                click(By.cssSelector("a[data-view=triggers]"));
                until(() -> text(By.id("trigger-list")).contains("Payment reminder"));
                click(By.cssSelector("#trigger-list tbody tr"));
                until(() -> text(By.id("trigger-stats")).contains("started"));

                click(By.cssSelector("a[data-view=campaigns]"));
                click(By.id("new-campaign"));
                waitFor(By.id("c-name")).sendKeys("Race");
                driver.findElement(By.id("c-rule")).sendKeys("tag:vip");
                Select variants = new Select(driver.findElement(By.id("c-variants")));
                variants.selectByValue("greet");
                variants.selectByValue("greet2");
                driver.findElement(By.id("c-test-percent")).sendKeys("10");
                new Select(driver.findElement(By.id("c-metric"))).selectByValue("open");
                driver.findElement(By.id("c-stages")).sendKeys("10, 50, 100");
                driver.findElement(By.id("c-opt-out")).sendKeys("0.02");
                driver.findElement(By.id("c-advanced")).sendKeys("{\"holdoutPercent\": 10, \"conversionEvent\": \"purchase\"}");
                click(By.id("create-campaign"));
                until(() -> "draft".equals(textOrNull(By.id("campaign-state"))));
                String race = driver.getCurrentUrl().replaceAll(".*#/campaigns/", "");
                com.fasterxml.jackson.databind.JsonNode made = gw.get("/v1/apps/" + gw.app + "/campaigns/" + race).json();
                assertThat(List.of(made.at("/content/variants/0/template").asText(), made.at("/content/variants/1/template").asText()))
                        .containsExactlyInAnyOrder("greet", "greet2");
                assertThat(made.at("/experiment/testPercent").asDouble()).isEqualTo(10.0);
                assertThat(made.at("/experiment/metric").asText()).isEqualTo("open");
                assertThat(made.at("/rollout/stages/0").asDouble()).isEqualTo(10.0);
                assertThat(made.at("/rollout/stages/2").asDouble()).isEqualTo(100.0);
                assertThat(made.at("/guards/0/pauseAt").asDouble()).isEqualTo(0.02);
                assertThat(made.at("/holdoutPercent").asInt()).isEqualTo(10);
                assertThat(text(By.id("experiment"))).contains("not decided yet");
                assertThat(text(By.id("rollout"))).contains("Gray rollout");

                click(By.cssSelector("a[data-view=policy]"));
                until(() -> text(By.id("policy-version")).contains("version 0"));
                assertThat(gw.send("PUT", "/v1/apps/" + gw.app + "/policy", "{\"quietHours\":{\"start\":\"22:00\",\"end\":\"07:00\"}}",
                        gw.key, List.of("If-Match", "\"0\"")).status()).as("someone else saves first").isEqualTo(200);
                click(By.id("save-policy"));
                assertThat(waitFor(By.cssSelector("#policy-result .error")).getAttribute("data-code")).isEqualTo("precondition_failed");
                click(By.id("reload-policy"));
                until(() -> text(By.id("policy-version")).contains("version 1"));
                assertThat(driver.findElement(By.id("policy-json")).getAttribute("value")).contains("22:00");
                click(By.id("save-policy"));
                until(() -> text(By.id("policy-result")).contains("Saved: version 2"));

                click(By.cssSelector("a[data-view=dead-letters]"));
                until(() -> text(By.id("dead-letters")).contains("0 on this page"));

                click(By.cssSelector("a[data-view=keys]"));
                waitFor(By.id("key-name")).sendKeys("a colleague who approves");
                click(By.id("key-role-approve"));
                click(By.id("key-role-read"));
                click(By.id("issue-key"));
                String issued = text(By.id("issued-key")).trim();
                until(() -> text(By.id("key-list")).contains("a colleague who approves"));
                signOutAndIn(issued);
                until(() -> text(By.id("who")).contains("(approve, read)"));
                assertThat(driver.findElement(By.cssSelector("a[data-view=keys]")).isDisplayed()).as("Keys: admins only").isFalse();
                signOutAndIn(gw.key);
                click(By.cssSelector("a[data-view=keys]"));
                String keyId = gw.send("GET", "/v1/key", null, issued).json().get("id").asText();
                click(By.cssSelector("button[data-key='" + keyId + "']"));
                click(By.cssSelector("button[data-key='" + keyId + "']")); // armed: the second click revokes
                until(() -> text(By.id("key-result")).contains("Revoked " + keyId));
                org.awaitility.Awaitility.await().atMost(Duration.ofSeconds(10))
                        .until(() -> gw.send("GET", "/v1/key", null, issued).status() == 401);
                click(By.id("sign-out"));
                waitFor(By.id("api-key"));
                assertThat(driver.executeScript("return sessionStorage.getItem('herald.key')")).isNull();
                noCspViolations();
            });
        }
    }

    // ---- helpers ------------------------------------------------------------------------------

    /** Users {prefix}-0.. with tag vip, a first name, a phone (when asked) and an APNs device; half in Berlin. */
    private static List<String> users(TestGateway gw, String prefix, int n, boolean phones) {
        ArrayNode list = JSON.createArrayNode();
        List<String> ids = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            ObjectNode u = list.addObject().put("user", prefix + "-" + i);
            ids.add(prefix + "-" + i);
            u.putArray("tags").add("vip").add(prefix + "-" + i);
            u.putObject("attributes").put("firstName", "Ann" + i).put("city", i % 2 == 0 ? "Berlin" : "Paris");
            if (phones) {
                u.put("phone", "+4917000000" + String.format("%02d", i));
            } else {
                u.putArray("devices").addObject().put("id", "phone").put("platform", "apns").put("token", TestGateway.token());
            }
        }
        TestGateway.Response r = gw.post("/v1/apps/" + gw.app + "/users", JSON.createObjectNode().set("users", list).toString());
        assertThat(r.status()).as(r.raw().body()).isEqualTo(200);
        return ids;
    }

    private static String key(TestGateway gw, String... roles) {
        TestGateway.Response k = gw.post("/v1/apps/" + gw.app + "/keys", JSON.createObjectNode()
                .set("roles", JSON.valueToTree(roles)).toString());
        assertThat(k.status()).as(k.raw().body()).isEqualTo(201);
        return k.json().get("key").asText();
    }

    private static void open(TestGateway gw, String path) {
        driver.get(gw.herald.baseUrl() + path);
    }

    private static void signIn(String key) {
        WebElement input = waitFor(By.id("api-key"));
        input.clear();
        input.sendKeys(key);
        click(By.id("sign-in-button"));
    }

    private static void signOutAndIn(String key) {
        click(By.id("sign-out"));
        signIn(key);
        waitFor(By.cssSelector("#nav:not([hidden])"));
    }

    private static WebElement waitFor(By by) {
        return new WebDriverWait(driver, Duration.ofSeconds(30)).until(d -> {
            List<WebElement> found = d.findElements(by);
            return found.isEmpty() || !found.get(0).isDisplayed() ? null : found.get(0);
        });
    }

    private static void click(By by) {
        new WebDriverWait(driver, Duration.ofSeconds(30)).until(d -> {
            try {
                WebElement e = d.findElement(by);
                if (!e.isDisplayed() || !e.isEnabled()) {
                    return false;
                }
                e.click();
                return true;
            } catch (org.openqa.selenium.NoSuchElementException | org.openqa.selenium.StaleElementReferenceException e) {
                return false;
            }
        });
    }

    private static void until(java.util.function.BooleanSupplier condition) {
        new WebDriverWait(driver, Duration.ofSeconds(60)).pollingEvery(Duration.ofMillis(100))
                .ignoring(org.openqa.selenium.StaleElementReferenceException.class)
                .until(d -> condition.getAsBoolean());
    }

    private static String text(By by) {
        return waitFor(by).getText();
    }

    private static String textOrNull(By by) {
        List<WebElement> found = driver.findElements(by);
        return found.isEmpty() ? null : found.get(0).getText().trim();
    }

    /** No page loaded so far broke the Content-Security-Policy (Chromium logs each violation). */
    private static void noCspViolations() {
        List<String> violations = new ArrayList<>();
        for (LogEntry e : driver.manage().logs().get(LogType.BROWSER)) {
            boolean failedLoad = e.getMessage().contains("Failed to load resource"); // an API answer of 4xx: the test's own
            if (e.getMessage().contains("Content Security Policy")
                    || e.getLevel().intValue() >= Level.SEVERE.intValue() && !failedLoad) {
                violations.add(e.getMessage());
            }
        }
        assertThat(violations).as("browser errors (CSP violations, script errors)").isEmpty();
    }

    private static void screenshot(String name) {
        try {
            Files.createDirectories(SHOTS);
            Files.write(SHOTS.resolve(name + ".png"), driver.getScreenshotAs(OutputType.BYTES));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    /** Runs a browser test; on failure keeps a screenshot and the page source of where it stood. */
    private static void shot(TestInfo info, Runnable test) throws IOException {
        driver.manage().logs().get(LogType.BROWSER); // what earlier tests left
        try {
            test.run();
        } catch (RuntimeException | AssertionError e) {
            String name = "failed-" + info.getTestMethod().map(java.lang.reflect.Method::getName).orElse("test");
            try {
                screenshot(name);
                Files.writeString(SHOTS.resolve(name + ".html"), driver.getPageSource());
            } catch (RuntimeException ignored) {
                // the browser itself may be what failed
            }
            throw e;
        } finally {
            driver.get("about:blank"); // no view of this test polls a gateway that is gone
        }
    }

    private static Path firstExisting(String... paths) {
        for (String p : paths) {
            Path path = Path.of(p);
            if (Files.isExecutable(path)) {
                return path;
            }
        }
        return null;
    }
}

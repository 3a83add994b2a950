package io.herald.gateway.sandbox;

import io.herald.gateway.connector.sms.SmsText;
import org.jsmpp.PDUStringException;
import org.jsmpp.SMPPConstant;
import org.jsmpp.bean.BroadcastSm;
import org.jsmpp.bean.CancelBroadcastSm;
import org.jsmpp.bean.CancelSm;
import org.jsmpp.bean.DataCodings;
import org.jsmpp.bean.DataSm;
import org.jsmpp.bean.ESMClass;
import org.jsmpp.bean.GSMSpecificFeature;
import org.jsmpp.bean.InterfaceVersion;
import org.jsmpp.bean.MessageMode;
import org.jsmpp.bean.MessageType;
import org.jsmpp.bean.NumberingPlanIndicator;
import org.jsmpp.bean.OptionalParameter;
import org.jsmpp.bean.QueryBroadcastSm;
import org.jsmpp.bean.QuerySm;
import org.jsmpp.bean.RegisteredDelivery;
import org.jsmpp.bean.ReplaceSm;
import org.jsmpp.bean.SubmitMulti;
import org.jsmpp.bean.SubmitSm;
import org.jsmpp.bean.TypeOfNumber;
import org.jsmpp.extra.ProcessRequestException;
import org.jsmpp.session.BindRequest;
import org.jsmpp.session.BroadcastSmResult;
import org.jsmpp.session.DataSmResult;
import org.jsmpp.session.QueryBroadcastSmResult;
import org.jsmpp.session.QuerySmResult;
import org.jsmpp.session.SMPPServerSession;
import org.jsmpp.session.SMPPServerSessionListener;
import org.jsmpp.session.ServerMessageReceiverListener;
import org.jsmpp.session.ServerResponseDeliveryAdapter;
import org.jsmpp.session.Session;
import org.jsmpp.session.SubmitMultiResult;
import org.jsmpp.session.SubmitSmResult;
import org.jsmpp.session.connection.ServerConnection;
import org.jsmpp.session.connection.ServerConnectionFactory;
import org.jsmpp.session.connection.socket.ServerSocketConnection;
import org.jsmpp.util.MessageId;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.time.LocalDateTime;
import java.time.format.DateTimeFormatter;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Deque;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * The local SMSC peer: a jsmpp {@link SMPPServerSessionListener} on 127.0.0.1 only that accepts
 * binds (checking system id and password when {@link #credentials} is set), answers submit_sm
 * with a unique message id (decimal, or hex as an SMPP 3.3 SMSC would, see {@link #hexIds}),
 * records every part per destination number (data coding, UDH, user data, arrival time),
 * reassembles concatenated texts, and after {@link #receiptDelay} sends a delivery receipt
 * (deliver_sm, esm_class 0x04, {@code id:... stat:DELIVRD ...}) on the session that submitted,
 * or on another bound session of the same system id when that one is gone (as SMSCs queue
 * receipts). Answers are scriptable per destination number, once or always, and receipts per
 * part ({@link #receipts(ReceiptScript)}: one part of a concatenated text may fail while the others
 * are delivered, or get no receipt at all).
 *
 * <p>Receipts always carry the decimal id, so with hex ids on the ESME must normalise to match.
 * Not a security boundary and not a carrier model (no real queueing, no throughput limit: use
 * {@link Answer#THROTTLED} scripts). Thread-safe; the creator owns it and must {@link #close()} it.
 */
public final class SandboxSmsc implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(SandboxSmsc.class);
    private static final DateTimeFormatter RECEIPT_DATE = DateTimeFormatter.ofPattern("yyMMddHHmm");

    /** A scripted answer to submit_sm. */
    public enum Answer {
        /** submit_sm_resp OK, then a DELIVRD receipt. */
        ACCEPT,
        /** ESME_RTHROTTLED (0x58). */
        THROTTLED,
        /** ESME_RMSGQFUL (0x14). */
        QUEUE_FULL,
        /** ESME_RINVDSTADR (0x0B). */
        INVALID_DEST,
        /** Accepted, then a receipt with stat:UNDELIV. */
        RECEIPT_UNDELIVERABLE,
        /** Accepted, then a receipt with stat:EXPIRED. */
        RECEIPT_EXPIRED,
        /** Accepted, then a receipt with stat:REJECTD. */
        RECEIPT_REJECTED
    }

    /**
     * One accepted submit_sm: {@code udh} is null for a single message; {@code reference},
     * {@code total} and {@code sequence} come from the concatenation header (0, 1, 1 when none).
     * {@code arrivalNanos} is System.nanoTime. Do not modify the arrays.
     */
    public record Part(String systemId, String messageId, int dataCoding, int esmClass, byte[] udh, byte[] userData,
                       int reference, int total, int sequence, long arrivalNanos) {
        /** This part's text on its own. */
        public String text() {
            return SmsText.decode(dataCoding, userData);
        }
    }

    /**
     * Decides the receipt of one accepted part: a final state ({@code DELIVRD}, {@code UNDELIV},
     * {@code EXPIRED}, {@code REJECTD}, ...) or null for no receipt at all. Called on a session
     * thread for every accepted submit_sm (so a part count or a send count can be kept); keep it short.
     */
    @FunctionalInterface
    public interface ReceiptScript {
        String stat(String number, Part part);
    }

    private record PendingReceipt(String number, String sourceAddr, String systemId, SMPPServerSession session,
                                  String stat, String text, LocalDateTime submitted) {
    }

    private final SMPPServerSessionListener listener;
    private final ServerSocket serverSocket;
    private final Thread acceptor;
    private final ExecutorService binding = Executors.newCachedThreadPool(r -> daemon(r, "herald-sandbox-smsc-bind"));
    private final ScheduledExecutorService receiptSender = Executors.newScheduledThreadPool(4,
            r -> daemon(r, "herald-sandbox-smsc-receipt"));
    private final Set<SMPPServerSession> sessions = ConcurrentHashMap.newKeySet();
    private final Map<SMPPServerSession, String> systemIds = new ConcurrentHashMap<>();
    private final Map<String, Deque<Answer>> once = new ConcurrentHashMap<>();
    private final Map<String, Answer> always = new ConcurrentHashMap<>();
    private final Map<String, List<Part>> parts = new ConcurrentHashMap<>();
    private final Map<String, List<Long>> arrivals = new ConcurrentHashMap<>();
    private final Map<String, List<String>> texts = new ConcurrentHashMap<>();
    private final Map<String, Part[]> assembling = new ConcurrentHashMap<>();
    private final Map<String, PendingReceipt> pendingReceipts = new ConcurrentHashMap<>();
    private final AtomicLong nextId = new AtomicLong(0xA0000000L);
    private final AtomicLong submits = new AtomicLong();
    private final AtomicLong accepted = new AtomicLong();
    private final AtomicLong rejected = new AtomicLong();
    private final AtomicLong receiptsSent = new AtomicLong();
    private final AtomicLong binds = new AtomicLong();
    private volatile String systemId;
    private volatile String password;
    private volatile long receiptDelayMs = 50;
    private volatile java.util.function.Consumer<String> onText;
    private volatile ReceiptScript receiptScript;
    private volatile boolean hexIds;
    private volatile boolean track = true;
    private volatile boolean closed;

    private SandboxSmsc(int port) throws IOException {
        ServerSocket[] holder = new ServerSocket[1];
        ServerConnectionFactory loopbackOnly = new ServerConnectionFactory() {
            @Override
            public ServerConnection listen(int p) throws IOException {
                return listen(p, 0, 50);
            }

            @Override
            public ServerConnection listen(int p, int timeout) throws IOException {
                return listen(p, timeout, 50);
            }

            @Override
            public ServerConnection listen(int p, int timeout, int backlog) throws IOException {
                ServerSocket s = new ServerSocket(p, backlog, InetAddress.getLoopbackAddress());
                s.setSoTimeout(timeout);
                holder[0] = s;
                return new ServerSocketConnection(s);
            }
        };
        this.listener = new SMPPServerSessionListener(port, loopbackOnly);
        this.serverSocket = holder[0];
        listener.setPduProcessorDegree(8);
        listener.setQueueCapacity(10_000);
        listener.setMessageReceiverListener(new Receiver());
        listener.setResponseDeliveryListener(new ServerResponseDeliveryAdapter() {
            @Override
            public void onSubmitSmRespSent(SubmitSmResult result, SMPPServerSession session) {
                PendingReceipt r = pendingReceipts.remove(result.getMessageId());
                if (r != null) {
                    receiptSender.schedule(() -> sendReceipt(result.getMessageId(), r, 0), receiptDelayMs,
                            TimeUnit.MILLISECONDS);
                }
            }
        });
        this.acceptor = daemon(this::acceptLoop, "herald-sandbox-smsc-accept");
        acceptor.start();
    }

    /** Starts a peer on 127.0.0.1:{@code port} (0 = a free port). */
    public static SandboxSmsc start(int port) {
        try {
            return new SandboxSmsc(port);
        } catch (IOException e) {
            throw new IllegalStateException("cannot start the SMSC sandbox on 127.0.0.1:" + port + ": " + e, e);
        }
    }

    private static Thread daemon(Runnable r, String name) {
        Thread t = new Thread(r, name);
        t.setDaemon(true);
        return t;
    }

    private void acceptLoop() {
        while (!closed) {
            SMPPServerSession session;
            try {
                session = listener.accept();
            } catch (IOException e) {
                if (!closed) {
                    log.warn("sandbox smsc: accept failed: {}", e.toString());
                }
                return;
            }
            binding.execute(() -> bind(session));
        }
    }

    private void bind(SMPPServerSession session) {
        try {
            BindRequest req = session.waitForBind(5_000);
            String wantId = systemId;
            String wantPassword = password;
            if (wantId != null && !wantId.equals(req.getSystemId())) {
                req.reject(SMPPConstant.STAT_ESME_RINVSYSID);
                session.close();
                return;
            }
            if (wantPassword != null && !wantPassword.equals(req.getPassword())) {
                req.reject(SMPPConstant.STAT_ESME_RINVPASWD);
                session.close();
                return;
            }
            systemIds.put(session, req.getSystemId());
            sessions.add(session);
            session.addSessionStateListener((newState, old, src) -> {
                if (!newState.isBound() && newState != org.jsmpp.extra.SessionState.OPEN) {
                    sessions.remove(session);
                }
            });
            req.accept("herald-sandbox", InterfaceVersion.IF_34);
            binds.incrementAndGet();
        } catch (Exception e) {
            log.debug("sandbox smsc: bind failed: {}", e.toString());
            session.close();
        }
    }

    private Answer answerFor(String number) {
        Deque<Answer> q = once.get(number);
        if (q != null) {
            synchronized (q) {
                Answer a = q.poll();
                if (a != null) {
                    return a;
                }
            }
        }
        return always.getOrDefault(number, Answer.ACCEPT);
    }

    private final class Receiver implements ServerMessageReceiverListener {
        @Override
        public SubmitSmResult onAcceptSubmitSm(SubmitSm sm, SMPPServerSession session) throws ProcessRequestException {
            long now = System.nanoTime();
            submits.incrementAndGet();
            String number = sm.getDestAddress();
            if (track) {
                arrivals.computeIfAbsent(number, k -> Collections.synchronizedList(new ArrayList<>())).add(now);
            }
            Answer answer = answerFor(number);
            switch (answer) {
                case THROTTLED -> throw reject(SMPPConstant.STAT_ESME_RTHROTTLED, "throttled");
                case QUEUE_FULL -> throw reject(SMPPConstant.STAT_ESME_RMSGQFUL, "message queue full");
                case INVALID_DEST -> throw reject(SMPPConstant.STAT_ESME_RINVDSTADR, "invalid destination");
                default -> {
                    // accepted below
                }
            }
            long n = nextId.incrementAndGet();
            String decimal = Long.toString(n);
            String id = hexIds ? Long.toHexString(n).toUpperCase(java.util.Locale.ROOT) : decimal;
            String sysId = systemIds.getOrDefault(session, "");
            byte[] sm0 = sm.getShortMessage() == null ? new byte[0] : sm.getShortMessage();
            Part part = part(sysId, id, sm, sm0, now);
            if (track) {
                parts.computeIfAbsent(number, k -> Collections.synchronizedList(new ArrayList<>())).add(part);
                assemble(number, part);
            }
            accepted.incrementAndGet();
            java.util.function.Consumer<String> listener = onText;
            if (listener != null) {
                listener.accept(part.text());
            }
            String stat = switch (answer) {
                case RECEIPT_UNDELIVERABLE -> "UNDELIV";
                case RECEIPT_EXPIRED -> "EXPIRED";
                case RECEIPT_REJECTED -> "REJECTD";
                default -> "DELIVRD";
            };
            ReceiptScript script = receiptScript;
            if (script != null) {
                stat = script.stat(number, part);
            }
            if (stat != null && (sm.getRegisteredDelivery() & 0x03) != 0) {
                pendingReceipts.put(id, new PendingReceipt(number, sm.getSourceAddr(), sysId, session, stat,
                        part.text(), LocalDateTime.now()));
            }
            try {
                return new SubmitSmResult(new MessageId(id), new OptionalParameter[0]);
            } catch (PDUStringException e) {
                throw reject(SMPPConstant.STAT_ESME_RSYSERR, e.toString());
            }
        }

        private ProcessRequestException reject(int status, String why) {
            rejected.incrementAndGet();
            return new ProcessRequestException(why, status);
        }

        @Override
        public SubmitMultiResult onAcceptSubmitMulti(SubmitMulti submitMulti, SMPPServerSession source)
                throws ProcessRequestException {
            throw new ProcessRequestException("submit_multi not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }

        @Override
        public QuerySmResult onAcceptQuerySm(QuerySm querySm, SMPPServerSession source) throws ProcessRequestException {
            throw new ProcessRequestException("query_sm not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }

        @Override
        public void onAcceptReplaceSm(ReplaceSm replaceSm, SMPPServerSession source) throws ProcessRequestException {
            throw new ProcessRequestException("replace_sm not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }

        @Override
        public void onAcceptCancelSm(CancelSm cancelSm, SMPPServerSession source) throws ProcessRequestException {
            throw new ProcessRequestException("cancel_sm not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }

        @Override
        public BroadcastSmResult onAcceptBroadcastSm(BroadcastSm broadcastSm, SMPPServerSession source)
                throws ProcessRequestException {
            throw new ProcessRequestException("broadcast_sm not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }

        @Override
        public void onAcceptCancelBroadcastSm(CancelBroadcastSm cancelBroadcastSm, SMPPServerSession source)
                throws ProcessRequestException {
            throw new ProcessRequestException("cancel_broadcast_sm not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }

        @Override
        public QueryBroadcastSmResult onAcceptQueryBroadcastSm(QueryBroadcastSm queryBroadcastSm,
                                                               SMPPServerSession source) throws ProcessRequestException {
            throw new ProcessRequestException("query_broadcast_sm not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }

        @Override
        public DataSmResult onAcceptDataSm(DataSm dataSm, Session source) throws ProcessRequestException {
            throw new ProcessRequestException("data_sm not supported", SMPPConstant.STAT_ESME_RINVCMDID);
        }
    }

    private static Part part(String systemId, String id, SubmitSm sm, byte[] data, long now) {
        int dc = sm.getDataCoding() & 0xFF;
        int esm = sm.getEsmClass() & 0xFF;
        if ((esm & 0x40) == 0 || data.length == 0) {
            return new Part(systemId, id, dc, esm, null, data, 0, 1, 1, now);
        }
        int udhl = data[0] & 0xFF;
        int end = Math.min(data.length, udhl + 1);
        byte[] udh = Arrays.copyOfRange(data, 0, end);
        byte[] ud = Arrays.copyOfRange(data, end, data.length);
        int ref = 0;
        int total = 1;
        int seq = 1;
        for (int i = 1; i + 1 < udh.length; ) {
            int iei = udh[i] & 0xFF;
            int len = udh[i + 1] & 0xFF;
            if (iei == 0x00 && len == 3 && i + 4 < udh.length) {
                ref = udh[i + 2] & 0xFF;
                total = udh[i + 3] & 0xFF;
                seq = udh[i + 4] & 0xFF;
            } else if (iei == 0x08 && len == 4 && i + 5 < udh.length) {
                ref = (udh[i + 2] & 0xFF) << 8 | udh[i + 3] & 0xFF;
                total = udh[i + 4] & 0xFF;
                seq = udh[i + 5] & 0xFF;
            }
            i += 2 + len;
        }
        return new Part(systemId, id, dc, esm, udh, ud, ref, total, seq, now);
    }

    private void assemble(String number, Part part) {
        List<String> done = texts.computeIfAbsent(number, k -> Collections.synchronizedList(new ArrayList<>()));
        if (part.udh() == null || part.total() <= 1) {
            done.add(part.text());
            return;
        }
        String key = number + '|' + part.reference() + '|' + part.total();
        Part[] slots = assembling.computeIfAbsent(key, k -> new Part[part.total()]);
        synchronized (slots) {
            if (part.sequence() < 1 || part.sequence() > slots.length) {
                return;
            }
            slots[part.sequence() - 1] = part;
            for (Part p : slots) {
                if (p == null) {
                    return;
                }
            }
            assembling.remove(key, slots);
            StringBuilder b = new StringBuilder();
            for (Part p : slots) {
                b.append(p.text());
            }
            done.add(b.toString());
        }
    }

    private void sendReceipt(String id, PendingReceipt r, int tries) {
        if (closed) {
            return;
        }
        SMPPServerSession session = r.session();
        if (!session.getSessionState().isBound()) {
            session = sessions.stream().filter(s -> r.systemId().equals(systemIds.get(s)))
                    .filter(s -> s.getSessionState().isBound()).findFirst().orElse(null);
        }
        if (session == null) {
            if (tries < 600) { // no bound session for this system id: keep it, as an SMSC would (up to ~2 min)
                receiptSender.schedule(() -> sendReceipt(id, r, tries + 1), 200, TimeUnit.MILLISECONDS);
            }
            return;
        }
        String decimal = hexIds ? Long.toString(Long.parseLong(id, 16)) : id;
        String now = LocalDateTime.now().format(RECEIPT_DATE);
        String snippet = r.text().length() > 20 ? r.text().substring(0, 20) : r.text();
        String text = "id:" + decimal + " sub:001 dlvrd:" + ("DELIVRD".equals(r.stat()) ? "001" : "000")
                + " submit date:" + r.submitted().format(RECEIPT_DATE) + " done date:" + now
                + " stat:" + r.stat() + " err:" + ("DELIVRD".equals(r.stat()) ? "000" : "001")
                + " text:" + snippet.replaceAll("[^\\x20-\\x7E]", "?");
        try {
            session.deliverShortMessage("", TypeOfNumber.INTERNATIONAL, NumberingPlanIndicator.ISDN, r.number(),
                    TypeOfNumber.UNKNOWN, NumberingPlanIndicator.UNKNOWN, r.sourceAddr() == null ? "" : r.sourceAddr(),
                    new ESMClass(MessageMode.DEFAULT, MessageType.SMSC_DEL_RECEIPT, GSMSpecificFeature.DEFAULT),
                    (byte) 0, (byte) 0, new RegisteredDelivery(0), DataCodings.ZERO,
                    text.getBytes(StandardCharsets.ISO_8859_1));
            receiptsSent.incrementAndGet();
        } catch (Exception e) {
            if (tries < 600 && !closed) {
                receiptSender.schedule(() -> sendReceipt(id, r, tries + 1), 200, TimeUnit.MILLISECONDS);
            } else {
                log.warn("sandbox smsc: receipt for {} not delivered: {}", id, e.toString());
            }
        }
    }

    /** Binds must present this system id and password (null = accept any). */
    /**
     * Calls {@code listener} with the text of every accepted submit_sm part, on the session's
     * thread (keep it short). The load test's peer process reads its markers this way.
     */
    public SandboxSmsc onText(java.util.function.Consumer<String> listener) {
        this.onText = listener;
        return this;
    }

    public SandboxSmsc credentials(String systemId, String password) {
        this.systemId = systemId;
        this.password = password;
        return this;
    }

    /** How long after submit_sm_resp the receipt is sent (default 50 ms). */
    public SandboxSmsc receiptDelay(Duration delay) {
        this.receiptDelayMs = Math.max(0, delay.toMillis());
        return this;
    }

    /**
     * Every accepted part's receipt state comes from {@code script} (null: from the scripted
     * {@link Answer}, DELIVRD by default), e.g. {@code (number, part) -> part.sequence() == 1 ? "UNDELIV" : "DELIVRD"}.
     */
    public SandboxSmsc receipts(ReceiptScript script) {
        this.receiptScript = script;
        return this;
    }

    /** Answer ids in upper-case hex (SMPP 3.3 style) while receipts carry them in decimal. */
    public SandboxSmsc hexIds(boolean hex) {
        this.hexIds = hex;
        return this;
    }

    /** Stops recording parts, texts and arrivals (long load runs); counters still count. */
    public SandboxSmsc track(boolean track) {
        this.track = track;
        return this;
    }

    /** The next submit_sm to {@code number} ('+' optional) get these answers, in order; then the standing answer. */
    public void scriptOnce(String number, Answer... answers) {
        Deque<Answer> q = once.computeIfAbsent(strip(number), k -> new ArrayDeque<>());
        synchronized (q) {
            q.addAll(List.of(answers));
        }
    }

    /** Every submit_sm to {@code number} gets {@code answer} (after any scripted once-answers). */
    public void scriptAlways(String number, Answer answer) {
        always.put(strip(number), answer);
    }

    /** Accepted parts for a destination number (without '+'), in arrival order. */
    public List<Part> parts(String number) {
        return copy(parts.get(strip(number)));
    }

    /** Complete texts received for a number (concatenated ones reassembled), in completion order. */
    public List<String> texts(String number) {
        return copy(texts.get(strip(number)));
    }

    /** Arrival times (System.nanoTime) of every submit_sm for a number, accepted or not. */
    public List<Long> arrivals(String number) {
        return copy(arrivals.get(strip(number)));
    }

    /** Closes every server session at once, as a network cut or an SMSC restart would. */
    public void closeSessions() {
        for (SMPPServerSession s : List.copyOf(sessions)) {
            sessions.remove(s);
            s.close();
        }
    }

    /** Sessions currently bound. */
    public int boundSessions() {
        return (int) sessions.stream().filter(s -> s.getSessionState().isBound()).count();
    }

    public long submitsTotal() {
        return submits.get();
    }

    public long acceptedTotal() {
        return accepted.get();
    }

    public long rejectedTotal() {
        return rejected.get();
    }

    public long receiptsSent() {
        return receiptsSent.get();
    }

    /** Successful binds since start. */
    public long bindsTotal() {
        return binds.get();
    }

    public String host() {
        return "127.0.0.1";
    }

    public int port() {
        return serverSocket.getLocalPort();
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        try {
            listener.close();
        } catch (IOException ignored) {
            // best effort
        }
        for (SMPPServerSession s : List.copyOf(sessions)) {
            s.close();
        }
        receiptSender.shutdownNow();
        binding.shutdownNow();
        try {
            acceptor.join(2_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static String strip(String number) {
        return number.startsWith("+") ? number.substring(1) : number;
    }

    private static <T> List<T> copy(List<T> l) {
        if (l == null) {
            return List.of();
        }
        synchronized (l) {
            return List.copyOf(l);
        }
    }
}

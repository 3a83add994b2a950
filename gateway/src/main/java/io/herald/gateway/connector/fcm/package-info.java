/**
 * The FCM HTTP v1 connector: {@link io.herald.gateway.connector.fcm.FcmConnector} sends one
 * request per target over Netty HTTP/2 + TLS, with an OAuth2 access token per Firebase project
 * (google-auth-library service-account credentials, refreshed ahead of expiry on a thread of its
 * own).
 *
 * <p>Starting points: {@code FcmConnector} (the public surface: {@code Project}, {@code Settings},
 * {@code credentials(Path)}); {@code FcmProject} (per project: access token, connections, waiting
 * queue, quota pause, retries); {@code FcmConnection} (one HTTP/2 connection and its stream
 * accounting); {@code FcmStreamHandler} (one request/response on a child stream channel);
 * {@code FcmResponses} (status + Google error body to an outcome). Everything except
 * {@code FcmConnector} is package-private and may change without notice. The local peer used by
 * tests and sandbox mode is {@link io.herald.gateway.sandbox.SandboxFcm}.
 */
package io.herald.gateway.connector.fcm;

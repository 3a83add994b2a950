/**
 * The SMS connector on SMPP 3.4 (jsmpp). Start with
 * {@link io.herald.gateway.connector.sms.SmsConnector}: transceiver binds per app account, a rate
 * limit and a window of outstanding submit_sm per bind, retries and rebinds with backoff, and
 * delivery receipts matched to messages through Redis ({@code herald:smsc:{app}:<smsc id>}).
 * {@link io.herald.gateway.connector.sms.SmsText} picks GSM 7-bit or UCS-2 and splits long texts
 * into concatenated parts. The local peer for tests and demos is
 * {@code sandbox.SandboxSmsc} (the sandbox depends on this package, not the other way).
 */
package io.herald.gateway.connector.sms;

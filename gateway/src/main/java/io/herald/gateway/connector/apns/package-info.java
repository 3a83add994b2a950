/**
 * The APNs connector on Pushy: {@link io.herald.gateway.connector.apns.ApnsConnector}. It knows the
 * sandbox peer only by address, certificate and key ({@code ApnsConnector.SandboxPeer}).
 */
package io.herald.gateway.connector.apns;

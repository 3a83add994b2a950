/** The APNs connector on Pushy: {@link io.herald.gateway.connector.apns.ApnsConnector}. */
package io.herald.gateway.connector.apns;

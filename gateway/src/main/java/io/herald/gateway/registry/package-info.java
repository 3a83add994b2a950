/** Users and their devices per app: {@link io.herald.gateway.registry.DeviceRegistry}. */
package io.herald.gateway.registry;

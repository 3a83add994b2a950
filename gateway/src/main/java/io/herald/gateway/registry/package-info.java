/** Users and their devices per app: {@link io.herald.gateway.registry.UserRegistry}. */
package io.herald.gateway.registry;

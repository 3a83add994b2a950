/**
 * Users per app: devices, profile (phone encrypted with {@link io.herald.gateway.registry.PersonalDataCipher},
 * locale, time zone, channel order, consent), in {@link io.herald.gateway.registry.UserRegistry}.
 */
package io.herald.gateway.registry;

/**
 * What a message says: stored templates ({@link io.herald.gateway.content.Template}, Mustache
 * rendered through a collector that reads maps only) and their per-node cache
 * ({@link io.herald.gateway.content.Templates}). The resolve stage renders a templated message for
 * its user; the templates API stores and previews them.
 */
package io.herald.gateway.content;

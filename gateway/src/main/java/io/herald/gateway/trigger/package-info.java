/**
 * Event triggers: rules ("A happened and B did not within T: send"), their instances and durable
 * timers in Redis (Triggers: rules and what events do; TriggerTimers: firing due instances into
 * the journal), so a send goes through the normal pipeline once, whichever node is alive.
 */
package io.herald.gateway.trigger;

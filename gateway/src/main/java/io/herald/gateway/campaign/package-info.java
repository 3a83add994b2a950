/**
 * Campaigns: the definition an operator writes (audience, content, schedule, throttle, policy
 * fields), validated and stored versioned ({@link io.herald.gateway.campaign.Campaigns}), and its
 * life as a state machine with approvals and an audit trail
 * ({@link io.herald.gateway.campaign.Campaign}). Launch and fan-out into the journal come next.
 */
package io.herald.gateway.campaign;

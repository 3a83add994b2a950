package io.herald.gateway.connector.sms;

import java.util.Map;

/**
 * SMPP 3.4 command_status values: their snake_case names (the delivery's failure reason and the
 * metrics tag) and how the connector treats them. Pure functions.
 */
final class SmppStatus {
    static final int THROTTLED = 0x58;
    static final int MSG_QUEUE_FULL = 0x14;
    static final int SYSTEM_ERROR = 0x08;
    static final int TEMPORARY_APP_ERROR = 0x64;

    private static final Map<Integer, String> NAMES = Map.ofEntries(
            Map.entry(0x01, "invalid_message_length"),
            Map.entry(0x02, "invalid_command_length"),
            Map.entry(0x03, "invalid_command_id"),
            Map.entry(0x04, "incorrect_bind_status"),
            Map.entry(0x05, "already_bound"),
            Map.entry(0x06, "invalid_priority_flag"),
            Map.entry(0x07, "invalid_registered_delivery_flag"),
            Map.entry(0x08, "system_error"),
            Map.entry(0x0A, "invalid_source_addr"),
            Map.entry(0x0B, "invalid_dest_addr"),
            Map.entry(0x0C, "invalid_message_id"),
            Map.entry(0x0D, "bind_failed"),
            Map.entry(0x0E, "invalid_password"),
            Map.entry(0x0F, "invalid_system_id"),
            Map.entry(0x11, "cancel_failed"),
            Map.entry(0x13, "replace_failed"),
            Map.entry(0x14, "message_queue_full"),
            Map.entry(0x15, "invalid_service_type"),
            Map.entry(0x33, "invalid_number_of_destinations"),
            Map.entry(0x34, "invalid_distribution_list_name"),
            Map.entry(0x40, "invalid_destination_flag"),
            Map.entry(0x42, "invalid_submit_with_replace"),
            Map.entry(0x43, "invalid_esm_class"),
            Map.entry(0x44, "cannot_submit_to_distribution_list"),
            Map.entry(0x45, "submit_failed"),
            Map.entry(0x48, "invalid_source_ton"),
            Map.entry(0x49, "invalid_source_npi"),
            Map.entry(0x50, "invalid_dest_ton"),
            Map.entry(0x51, "invalid_dest_npi"),
            Map.entry(0x53, "invalid_system_type"),
            Map.entry(0x54, "invalid_replace_flag"),
            Map.entry(0x55, "invalid_number_of_messages"),
            Map.entry(0x58, "throttled"),
            Map.entry(0x61, "invalid_schedule_time"),
            Map.entry(0x62, "invalid_expiry"),
            Map.entry(0x63, "invalid_default_message_id"),
            Map.entry(0x64, "temporary_app_error"),
            Map.entry(0x65, "permanent_app_error"),
            Map.entry(0x66, "rejected_app_error"),
            Map.entry(0x67, "query_failed"),
            Map.entry(0xC0, "invalid_tlv_stream"),
            Map.entry(0xC1, "tlv_not_allowed"),
            Map.entry(0xC2, "invalid_tlv_length"),
            Map.entry(0xC3, "missing_tlv"),
            Map.entry(0xC4, "invalid_tlv_value"),
            Map.entry(0xFE, "delivery_failure"),
            Map.entry(0xFF, "unknown_error"));

    private SmppStatus() {
    }

    /** snake_case name of a command_status ({@code invalid_dest_addr}); {@code status_0x...} when not standard. */
    static String name(int status) {
        String n = NAMES.get(status);
        return n != null ? n : String.format("status_0x%x", status);
    }

    /** The SMSC asks us to slow down: pause the bind and retry, without using up an attempt. */
    static boolean isThrottle(int status) {
        return status == THROTTLED || status == MSG_QUEUE_FULL;
    }

    /** A transient SMSC fault: retried with backoff, counted as an attempt. */
    static boolean isTransient(int status) {
        return status == SYSTEM_ERROR || status == TEMPORARY_APP_ERROR;
    }
}

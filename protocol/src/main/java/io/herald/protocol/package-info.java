/**
 * The Herald wire contract: the API types ({@link io.herald.protocol.Message},
 * {@link io.herald.protocol.DecodedBatch}, {@link io.herald.protocol.ApiError}), the machine-readable
 * {@link io.herald.protocol.ErrorCode}s, the strict JSON {@link io.herald.protocol.BatchCodec} that
 * decodes and validates batches, and {@link io.herald.protocol.ApnsPayloads}, which renders the APNs
 * JSON payload.
 *
 * <p>Everything in this package is either an immutable value or a stateless, thread-safe service;
 * nothing here performs I/O beyond (de)serialising byte arrays. Validation follows one rule: a
 * problem with the request as a whole raises {@link io.herald.protocol.BatchRejectedException},
 * while a problem with one message becomes an {@link io.herald.protocol.ApiError} on that item so
 * the rest of the batch still goes through.
 */
package io.herald.protocol;

package io.herald.gateway.tracking;

import org.junit.jupiter.api.Test;

import java.util.UUID;

import static org.assertj.core.api.Assertions.assertThat;

class MessageIdsTest {

    @Test
    void messageIdsNameTheirBatchAndIndex() {
        UUID batch = MessageIds.newBatchId();
        assertThat(MessageIds.isBatchId(batch)).isTrue();
        assertThat(batch.version()).isEqualTo(4);
        for (int index : new int[] {0, 1, 9_999, 1_000_000}) {
            UUID id = MessageIds.messageId(batch, index);
            assertThat(MessageIds.isBatchId(id)).isFalse();
            assertThat(MessageIds.batchOf(id)).isEqualTo(batch);
            assertThat(MessageIds.indexOf(id)).isEqualTo(index);
            assertThat(id.version()).isEqualTo(4);
        }
    }

    @Test
    void batchIdsAreUnique() {
        assertThat(MessageIds.newBatchId()).isNotEqualTo(MessageIds.newBatchId());
    }

    @Test
    void parseRejectsNonUuids() {
        assertThat(MessageIds.parse("not-a-uuid")).isNull();
        assertThat(MessageIds.parse(null)).isNull();
        assertThat(MessageIds.batchOf(MessageIds.newBatchId())).isNull();
    }
}

package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// KeysBucket keeps the signing-key rotations: ours in progress (its
// new key's file, which peers confirmed it, when we switched) and the
// rotations our peers announced and we accepted, so that a restart
// signs with the key in force and takes the keys peers rotated to,
// whatever the policy file still pins.
const KeysBucket = "ANFED_KEYS"

func openKeys(ctx context.Context, js jetstream.JetStream, maxBytes int64, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      KeysBucket,
		Description: "anfed signing-key rotations: ours and those our peers announced",
		Storage:     jetstream.FileStorage,
		MaxBytes:    maxBytes,
		Replicas:    replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("create key-value bucket %s: %w", KeysBucket, err)
	}
	return kv, nil
}

// KeyRecord reads the record name of the key rotations' bucket; nil
// when there is none.
func (s *Store) KeyRecord(ctx context.Context, name string) ([]byte, error) {
	e, err := s.keys.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read key record %s: %w", name, err)
	}
	return e.Value(), nil
}

// PutKeyRecord writes the record name of the key rotations' bucket,
// once JetStream stored it.
func (s *Store) PutKeyRecord(ctx context.Context, name string, value []byte) error {
	if err := s.Fault(); err != nil {
		return fmt.Errorf("write key record %s: %w", name, err)
	}
	if _, err := s.keys.Put(ctx, name, value); err != nil {
		return fmt.Errorf("write key record %s: %w", name, err)
	}
	return nil
}

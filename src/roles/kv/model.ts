// Schemas of the kv role's routes.
import { t } from 'elysia'

/** Limits on pairs: the registry holds addresses and small settings, not documents. */
export const MAX_KEY_LENGTH = 1024
export const MAX_VALUE_LENGTH = 65_536

export const Key = t.String({
  minLength: 1,
  maxLength: MAX_KEY_LENGTH,
  error: `key must be a non-empty text of at most ${MAX_KEY_LENGTH} characters`,
  examples: ['masterAddress'],
})
export const Value = t.String({
  minLength: 1,
  maxLength: MAX_VALUE_LENGTH,
  error: `value must be a non-empty text of at most ${MAX_VALUE_LENGTH} characters`,
  examples: ['localhost:3003'],
})

export const Ttl = t.String({
  pattern: '^([1-9][0-9]{0,4})$',
  error: 'ttl must be a whole number of seconds from 1 to 99999',
  description: 'Seconds until the pair disappears unless set again (registrations kept alive by a heartbeat)',
})

export const KeyQuery = t.Object({ key: Key })
export const PairQuery = t.Object({ key: Key, value: Value, ttl: t.Optional(Ttl) })
export const ListQuery = t.Object({
  prefix: t.Optional(
    t.String({ maxLength: MAX_KEY_LENGTH, error: `prefix must be at most ${MAX_KEY_LENGTH} characters`, description: 'Only keys that start with this' }),
  ),
})

import { CodedError } from '../lib/errors.ts';

/** A rule of the domain said no. The code is the client-facing, documented one. */
export class DomainError extends CodedError {}

export class NotFoundError extends CodedError {
  constructor(resource: string, id: string) {
    super('resource_missing', `No such ${resource}: '${id}'`, { details: { resource } });
  }
}

export class IdempotencyKeyReusedError extends CodedError {
  constructor(key: string) {
    super(
      'idempotency_key_reused',
      `Keys for idempotent requests can only be used with the same parameters they were first used with. The key '${key}' was used with other parameters.`,
    );
  }
}

// Who may read a task when results are private: the holder of its key, or a caller with the token (workers, operators).
import { bearerMatches, tokenDigest } from '../../plugins/auth.ts'
import { keyMatches, TASK_KEY_HEADER } from '../../shared/task-key.ts'

/** What a read brings to prove it may see the task. */
export interface ReadAccess {
  /** The key given (`key=`, else the X-Task-Key header); a key given is always checked, token or not. */
  readonly key: string | undefined
  /** The caller sent the roles' token: it needs no key. */
  readonly token: boolean
}

export interface TaskAccess {
  /** What `request` brings; undefined when results are not private (every read is allowed, as in the original). */
  of(request: Request, queryKey: string | undefined): ReadAccess | undefined
  /** Whether `access` may read a task whose key hash is `keyHash` (undefined: a task without a key). */
  allows(access: ReadAccess | undefined, keyHash: string | undefined): boolean
}

export function createTaskAccess(options: { privateResults: boolean; token: string | undefined }): TaskAccess {
  const expected = options.token === undefined ? undefined : tokenDigest(options.token)
  return {
    of(request, queryKey) {
      if (!options.privateResults) return undefined
      const key = queryKey ?? request.headers.get(TASK_KEY_HEADER) ?? undefined
      return { key, token: key === undefined && expected !== undefined && bearerMatches(request.headers.get('authorization'), expected) }
    },
    allows(access, keyHash) {
      if (access === undefined) return true
      if (access.key !== undefined) return keyMatches(access.key, keyHash)
      return access.token
    },
  }
}

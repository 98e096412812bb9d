// Operators' calls from the page and the board (retry, delete): internal when the system runs with PIXMILL_TOKEN, so
// the token is asked for once per tab, kept in sessionStorage, and forgotten when it is refused.

const KEY = 'pixmill-token'

/** POSTs `path`; on 401 asks for the operator token and tries once more. Resolves to `{ ok, message }`. */
export async function operatorPost(path, what) {
  const send = () => {
    const token = sessionStorage.getItem(KEY)
    return fetch(path, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} })
  }
  try {
    let r = await send()
    if (r.status === 401) {
      const token = window.prompt(`${what} needs the operator token (PIXMILL_TOKEN):`)
      if (!token) return { ok: false, message: 'no operator token was given' }
      sessionStorage.setItem(KEY, token)
      r = await send()
      if (r.status === 401) sessionStorage.removeItem(KEY)
    }
    const text = (await r.text()).replace(/^Error:\s*/, '')
    return { ok: r.ok, message: r.ok ? '' : text || `the server answered ${r.status}` }
  } catch {
    return { ok: false, message: 'the frontend cannot be reached' }
  }
}

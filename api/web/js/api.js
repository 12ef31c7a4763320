// The only thing the web app talks to: the HTTP contract in API.md.
// - keeps the bearer token (localStorage) and the signed-in account;
// - keeps the X-Consistency-Token and sends it with every request; commands answer
//   with it merged with their own, so the user always reads all their own writes;
// - turns error answers into ApiError with a readable message from `detail`.

const TOKEN_KEY = 'photostream.token';
const ME_KEY = 'photostream.me';
const CONSISTENCY_KEY = 'photostream.consistency';

function readJSON(storage, key) {
  try {
    return JSON.parse(storage.getItem(key) || 'null');
  } catch {
    return null;
  }
}

const listeners = new Set();

export const session = {
  token: localStorage.getItem(TOKEN_KEY),
  me: readJSON(localStorage, ME_KEY),

  get signedIn() {
    return Boolean(this.token);
  },
  start(token, account) {
    this.token = token;
    localStorage.setItem(TOKEN_KEY, token);
    consistency.clear();
    this.setMe(account);
  },
  setMe(account) {
    this.me = account || null;
    if (account) localStorage.setItem(ME_KEY, JSON.stringify(account));
    else localStorage.removeItem(ME_KEY);
    for (const fn of listeners) fn(this.me);
  },
  clear() {
    this.token = null;
    localStorage.removeItem(TOKEN_KEY);
    consistency.clear();
    following.reset();
    this.setMe(null);
  },
  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  isMe(username) {
    return Boolean(this.me && username && this.me.username.toLowerCase() === String(username).toLowerCase());
  },
};

// The latest consistency token; kept per tab (sessionStorage survives a reload).
export const consistency = {
  value: sessionStorage.getItem(CONSISTENCY_KEY),
  note(token) {
    if (!token) return;
    this.value = token;
    sessionStorage.setItem(CONSISTENCY_KEY, token);
  },
  clear() {
    this.value = null;
    sessionStorage.removeItem(CONSISTENCY_KEY);
  },
};

export class ApiError extends Error {
  constructor(status, message, body = null, retryAfter = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.body = body;
    this.retryAfter = retryAfter;
  }
}

const DEFAULT_MESSAGES = {
  400: 'That request was not accepted.',
  401: 'Please sign in to continue.',
  403: "You're not allowed to do that.",
  404: "This page isn't available.",
  409: 'That conflicts with something that already exists.',
  413: 'This photo is too large. The limit is 15 MB.',
  415: "This file isn't a supported image. Use JPEG, PNG, WebP or GIF.",
  422: 'Some of the information is not valid.',
  429: "You're doing that too often. Please wait a moment.",
  503: 'photostream is busy right now. Please try again shortly.',
};

function prettyField(loc) {
  const parts = (loc || []).filter((p) => p !== 'body' && p !== 'query' && p !== 'path' && typeof p === 'string');
  const name = parts.join(' ').replace(/_/g, ' ');
  return name ? name.charAt(0).toUpperCase() + name.slice(1) : '';
}

/** A human sentence from an error answer's body. */
export function describeError(status, body, retryAfter = null) {
  let detail = body && body.detail;
  if (Array.isArray(detail)) {
    detail = detail
      .map((item) => {
        if (typeof item === 'string') return item;
        const field = prettyField(item.loc);
        const msg = String(item.msg || '').replace(/^Value error, /, '');
        return field ? `${field}: ${msg}` : msg;
      })
      .filter(Boolean)
      .join(' ');
  } else if (detail && typeof detail === 'object') {
    detail = detail.message || detail.msg || JSON.stringify(detail);
  }
  let message = typeof detail === 'string' && detail.trim() ? detail.trim() : DEFAULT_MESSAGES[status] || `Something went wrong (error ${status}).`;
  if ((status === 429 || status === 503) && retryAfter) {
    message += ` Try again in ${retryAfter} s.`;
  }
  return message;
}

function goToSignIn() {
  const here = location.hash || '#/';
  if (here.startsWith('#/login') || here.startsWith('#/signup')) return;
  location.hash = `#/login?next=${encodeURIComponent(here)}`;
}

function handleUnauthorized(sentToken) {
  // Only a token that the server refused means "signed out"; a wrong
  // password on the sign-in form is a plain error.
  if (sentToken && sentToken === session.token) {
    session.clear();
    goToSignIn();
  }
}

function buildUrl(path, query) {
  const url = new URL(path, location.origin);
  if (query) {
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, String(v));
    }
  }
  return url.pathname + url.search;
}

function noteHeaders(getHeader) {
  consistency.note(getHeader('X-Consistency-Token'));
  // Read models did not catch up within the server's bound: stop asking them
  // to wait for that position on every later read.
  if ((getHeader('X-Consistency') || '').toLowerCase() === 'stale') consistency.clear();
}

/**
 * api('/v1/feed', {query: {limit: 12}}) -> parsed JSON (or null for 204).
 * Throws ApiError (status 0 for a network failure) or an AbortError.
 */
export async function api(path, { method = 'GET', body, query, signal } = {}) {
  const headers = { Accept: 'application/json' };
  const sentToken = session.token;
  if (sentToken) headers.Authorization = `Bearer ${sentToken}`;
  // Sent with commands too: the server answers with the merge of it and the command's
  // own token, so the one kept covers every write of this session (a session token).
  if (consistency.value) headers['X-Consistency-Token'] = consistency.value;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(buildUrl(path, query), { method, headers, body: payload, signal, credentials: 'same-origin' });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, "Can't reach photostream. Check your connection and try again.");
  }
  const getHeader = (name) => res.headers.get(name);
  let data = null;
  const type = res.headers.get('Content-Type') || '';
  if (res.status !== 204 && type.includes('json')) {
    try {
      data = await res.json();
    } catch {
      data = null;
    }
  }
  if (res.ok) {
    noteHeaders(getHeader);
    return data;
  }
  if (res.status === 401) handleUnauthorized(sentToken);
  throw new ApiError(res.status, describeError(res.status, data, res.headers.get('Retry-After')), data, res.headers.get('Retry-After'));
}

/** Upload one image with progress (XMLHttpRequest gives upload progress). */
export function uploadMedia(file, { onProgress, signal } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const sentToken = session.token;
    xhr.open('POST', '/v1/media');
    xhr.setRequestHeader('Accept', 'application/json');
    if (sentToken) xhr.setRequestHeader('Authorization', `Bearer ${sentToken}`);
    if (consistency.value) xhr.setRequestHeader('X-Consistency-Token', consistency.value);
    xhr.upload.addEventListener('progress', (e) => {
      if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total);
    });
    xhr.addEventListener('load', () => {
      let data = null;
      try {
        data = JSON.parse(xhr.responseText || 'null');
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        noteHeaders((name) => xhr.getResponseHeader(name));
        if (onProgress) onProgress(1);
        resolve(data);
        return;
      }
      if (xhr.status === 401) handleUnauthorized(sentToken);
      const retryAfter = xhr.getResponseHeader('Retry-After');
      reject(new ApiError(xhr.status, describeError(xhr.status, data, retryAfter), data, retryAfter));
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, "Can't reach photostream. Check your connection and try again.")));
    xhr.addEventListener('abort', () => reject(new DOMException('Upload cancelled', 'AbortError')));
    if (signal) {
      if (signal.aborted) {
        reject(new DOMException('Upload cancelled', 'AbortError'));
        return;
      }
      signal.addEventListener('abort', () => xhr.abort(), { once: true });
    }
    const form = new FormData();
    form.append('file', file, file.name || 'photo');
    xhr.send(form);
  });
}

/** A page fetcher for any list route: (cursor, signal) => {items, next_cursor}. */
export function lister(path, { limit = 12, query = {} } = {}) {
  return (cursor, signal) => api(path, { query: { ...query, limit, cursor }, signal });
}

// ---------------------------------------------------------------- who I follow
// Account carries no "followed by me" flag in the contract, so the app learns
// the signed-in account's following list once, then keeps it up to date with
// its own follow/unfollow commands. If the server adds a flag on Account
// (followed_by_me / following / is_following), that wins.

const FOLLOW_FLAGS = ['followed_by_me', 'following', 'is_following', 'viewer_follows'];

export const following = {
  set: null,
  loading: null,
  reset() {
    this.set = null;
    this.loading = null;
  },
  async load() {
    if (!session.me) return new Set();
    if (this.set) return this.set;
    if (!this.loading) {
      const me = session.me.username;
      this.loading = (async () => {
        const names = new Set();
        let cursor = null;
        for (let page = 0; page < 50; page += 1) {
          const data = await api(`/v1/accounts/${encodeURIComponent(me)}/following`, { query: { limit: 100, cursor } });
          for (const acc of data?.items || []) names.add(acc.username.toLowerCase());
          cursor = data?.next_cursor;
          if (!cursor) break;
        }
        this.set = names;
        return names;
      })().catch((err) => {
        this.loading = null;
        throw err;
      });
    }
    return this.loading;
  },
  async isFollowing(account) {
    for (const flag of FOLLOW_FLAGS) {
      if (typeof account?.[flag] === 'boolean') return account[flag];
    }
    const set = await this.load();
    return set.has(account.username.toLowerCase());
  },
  mark(username, value) {
    if (!this.set) return;
    if (value) this.set.add(username.toLowerCase());
    else this.set.delete(username.toLowerCase());
  },
};

/**
 * Follow or unfollow; returns the new state: 'following', 'requested' (a private
 * account was asked and has not approved yet) or 'none'.
 */
export async function setFollow(username, value) {
  const path = `/v1/accounts/${encodeURIComponent(username)}/follow`;
  const data = await api(path, { method: value ? 'POST' : 'DELETE' });
  const now = typeof data?.following === 'boolean' ? data.following : value;
  following.mark(username, now);
  if (now) return 'following';
  return data?.requested ? 'requested' : 'none';
}

/** Block or mute (kind: 'block' | 'mute') an account, or lift it; returns the new state. */
export async function setRelation(username, kind, value) {
  const data = await api(`/v1/accounts/${encodeURIComponent(username)}/${kind}`, { method: value ? 'POST' : 'DELETE' });
  if (kind === 'block' && value) following.mark(username, false); // a block ends the follow
  return Boolean(data?.[kind === 'block' ? 'blocking' : 'muting']);
}

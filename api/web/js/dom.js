// Small DOM helpers. Every piece of user text goes through text nodes
// (textContent), never innerHTML, so nothing a user writes can become markup.

const SVG_NS = 'http://www.w3.org/2000/svg';

/**
 * h('a', {href: '#/', class: 'x', onclick: fn}, 'text', childNode, [more])
 * Strings become text nodes. null/false/undefined children are skipped.
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  if (props) setProps(el, props);
  append(el, children);
  return el;
}

const PROPERTY_KEYS = new Set(['value', 'checked', 'disabled', 'hidden', 'multiple',
  'selected', 'required', 'readOnly', 'draggable', 'open', 'indeterminate']);

function setProps(el, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'style') Object.assign(el.style, value);
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (PROPERTY_KEYS.has(key)) el[key] = value;
    else if (value === false) continue;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// ---------------------------------------------------------------- icons
// 24x24 stroke icons (drawn for this app). Each entry: list of path data;
// an entry {fill: true} draws filled instead of stroked.
const ICONS = {
  home: ['M3 10.2 12 3l9 7.2V20a1 1 0 0 1-1 1h-5.5v-6.5h-5V21H4a1 1 0 0 1-1-1z'],
  search: ['M10.5 3.5a7 7 0 1 1 0 14 7 7 0 0 1 0-14z', 'M20.5 20.5 15.6 15.6'],
  explore: ['M12 2.8a9.2 9.2 0 1 1 0 18.4 9.2 9.2 0 0 1 0-18.4z', 'M15.8 8.2 13.6 13.6 8.2 15.8 10.4 10.4z'],
  create: ['M7.5 3h9A4.5 4.5 0 0 1 21 7.5v9a4.5 4.5 0 0 1-4.5 4.5h-9A4.5 4.5 0 0 1 3 16.5v-9A4.5 4.5 0 0 1 7.5 3z', 'M12 7.5v9', 'M7.5 12h9'],
  heart: ['M12 20.3c-.4 0-7.6-4.5-9.2-9.2C1.7 7.7 3.9 4.4 7.3 4.4c2 0 3.5 1 4.7 2.8 1.2-1.8 2.7-2.8 4.7-2.8 3.4 0 5.6 3.3 4.5 6.7-1.6 4.7-8.8 9.2-9.2 9.2z'],
  comment: ['M20.7 16.4A9 9 0 1 0 17 20.1l4.3 1.1z'],
  send: ['M21.5 2.5 10.2 13.8', 'M21.5 2.5 14.6 21l-4.4-7.2L3 9.4z'],
  user: ['M12 12.2a4.3 4.3 0 1 0 0-8.6 4.3 4.3 0 0 0 0 8.6z', 'M4 21a8 8 0 0 1 16 0'],
  left: ['M14.5 18 8.5 12l6-6'],
  right: ['M9.5 18l6-6-6-6'],
  close: ['M18 6 6 18', 'M6 6l12 12'],
  more: ['M5 12h.01', 'M12 12h.01', 'M19 12h.01'],
  carousel: ['M8 8h11.5v11.5H8z', 'M4.5 15.5V4.5h11'],
  grid: ['M3.5 3.5h17v17h-17z', 'M9.2 3.5v17', 'M14.8 3.5v17', 'M3.5 9.2h17', 'M3.5 14.8h17'],
  menu: ['M3.5 6.5h17', 'M3.5 12h17', 'M3.5 17.5h17'],
  settings: ['M4 7h9', 'M17 7h3', 'M15 5v4', 'M4 17h3', 'M11 17h9', 'M9 15v4'],
  logout: ['M14.5 3.5h4a2 2 0 0 1 2 2v13a2 2 0 0 1-2 2h-4', 'M9.5 16.5 4.5 12l5-4.5', 'M4.5 12h11'],
  image: ['M4.5 3.5h15a1 1 0 0 1 1 1v15a1 1 0 0 1-1 1h-15a1 1 0 0 1-1-1v-15a1 1 0 0 1 1-1z', 'M3.5 16 8.5 11l4 4 3-3 5 5', 'M15.5 7.5h.01'],
  bell: ['M6 16V11a6 6 0 1 1 12 0v5l1.5 2h-15z', 'M10 20.5a2.2 2.2 0 0 0 4 0'],
  message: ['M12 3c-5 0-9 3.7-9 8.4 0 2.6 1.3 4.9 3.3 6.4V21.5l3.4-1.9c.7.2 1.5.3 2.3.3 5 0 9-3.7 9-8.4S17 3 12 3z', 'M7 13.5l3.3-3.3 2.7 2.3 4-3.7'],
  trash: ['M4 6.5h16', 'M9 6.5V4h6v2.5', 'M6 6.5l1 14h10l1-14'],
  link: ['M10 14a4.5 4.5 0 0 0 6.4 0l3-3a4.5 4.5 0 0 0-6.4-6.4l-1 1', 'M14 10a4.5 4.5 0 0 0-6.4 0l-3 3A4.5 4.5 0 0 0 11 19.4l1-1'],
  edit: ['M4 20h4L19 9l-4-4L4 16z', 'M13.5 6.5l4 4'],
  back: ['M20 12H4.5', 'M10.5 18l-6-6 6-6'],
  lock: ['M6 10.5h12v10H6z', 'M8.5 10.5V7.5a3.5 3.5 0 0 1 7 0v3'],
  tag: ['M9 3.5 7 20.5', 'M17 3.5l-2 17', 'M4 8.5h16.5', 'M3.5 15.5H20'],
};

/** An inline SVG icon; decorative (aria-hidden) unless a label is given. */
export function icon(name, { filled = false, label = null, size = 24, cls = '' } = {}) {
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('width', String(size));
  svg.setAttribute('height', String(size));
  svg.setAttribute('class', `icon icon-${name}${filled ? ' filled' : ''}${cls ? ' ' + cls : ''}`);
  svg.setAttribute('fill', filled ? 'currentColor' : 'none');
  svg.setAttribute('stroke', 'currentColor');
  svg.setAttribute('stroke-width', name === 'more' ? '3' : '1.9');
  svg.setAttribute('stroke-linecap', 'round');
  svg.setAttribute('stroke-linejoin', 'round');
  if (label) {
    svg.setAttribute('role', 'img');
    svg.setAttribute('aria-label', label);
  } else {
    svg.setAttribute('aria-hidden', 'true');
  }
  svg.setAttribute('focusable', 'false');
  for (const d of ICONS[name] || []) {
    const path = document.createElementNS(SVG_NS, 'path');
    path.setAttribute('d', d);
    svg.append(path);
  }
  return svg;
}

// ---------------------------------------------------------------- text

// #hashtag: letters, digits, underscore and combining marks (any script: "#नमस्ते" is
// one word), as domain/rules.parse_tags reads captions and comments. @mention: a username.
const TOKEN_RE = /(#[\p{L}\p{N}_][\p{L}\p{N}_\p{Mn}\p{Mc}]*)|(@[a-z0-9._]{1,30})/giu;
const TAG_MAX_LENGTH = 100;

/** The tag page a #tag links to: tags are compared in NFC lower case (normalize_tag). */
export function tagHref(tag) {
  return `#/tags/${encodeURIComponent(tag.replace(/^#/, '').normalize('NFC').toLowerCase())}`;
}

/** Split text into [{type: 'text'|'tag'|'mention', value}] pieces. */
export function tokenize(text) {
  const out = [];
  let last = 0;
  const source = String(text ?? '');
  for (const match of source.matchAll(TOKEN_RE)) {
    let token = match[0];
    let start = match.index;
    // "#" or "@" glued to a word (e.g. an e-mail address) is not a token.
    if (start > 0 && /[\p{L}\p{N}_]/u.test(source[start - 1])) continue;
    // As the server: "&#" is an HTML entity, and all-digit or over-long tags are not tags.
    if (match[1] && (source[start - 1] === '&' || /^#\p{Nd}+$/u.test(token) || token.length - 1 > TAG_MAX_LENGTH)) continue;
    if (match[2]) token = token.replace(/\.+$/, ''); // "@bob." ends a sentence
    if (token.length < 2) continue;
    if (start > last) out.push({ type: 'text', value: source.slice(last, start) });
    out.push({ type: match[1] ? 'tag' : 'mention', value: token });
    last = start + token.length;
  }
  if (last < source.length) out.push({ type: 'text', value: source.slice(last) });
  return out;
}

/** Text with #tags and @mentions turned into links (built from text nodes). */
export function richText(text) {
  const frag = document.createDocumentFragment();
  for (const piece of tokenize(text)) {
    if (piece.type === 'text') frag.append(document.createTextNode(piece.value));
    else if (piece.type === 'tag') {
      frag.append(h('a', { class: 'tag-link', href: tagHref(piece.value) }, piece.value));
    } else {
      frag.append(h('a', { class: 'mention-link', href: `#/u/${encodeURIComponent(piece.value.slice(1).toLowerCase())}` }, piece.value));
    }
  }
  return frag;
}

// ---------------------------------------------------------------- time & numbers

export function timeAgo(iso, { long = false } = {}) {
  const then = new Date(iso);
  if (Number.isNaN(then.getTime())) return '';
  const seconds = Math.max(0, (Date.now() - then.getTime()) / 1000);
  const units = [
    [60, 's', 'second'], [60, 'm', 'minute'], [24, 'h', 'hour'], [7, 'd', 'day'], [Infinity, 'w', 'week'],
  ];
  let value = seconds;
  if (seconds < 45) return long ? 'just now' : 'now';
  for (const [size, short, word] of units) {
    if (value < size) {
      const n = Math.floor(value);
      if (short === 'w' && n > 8) break;
      return long ? `${n} ${word}${n === 1 ? '' : 's'} ago` : `${n}${short}`;
    }
    value /= size;
  }
  return then.toLocaleDateString(undefined, { year: 'numeric', month: 'long', day: 'numeric' });
}

export function timeEl(iso, opts) {
  const date = new Date(iso);
  return h('time', {
    datetime: iso,
    title: Number.isNaN(date.getTime()) ? '' : date.toLocaleString(),
  }, timeAgo(iso, opts));
}

const compact = new Intl.NumberFormat(undefined, { notation: 'compact', maximumFractionDigits: 1 });
const full = new Intl.NumberFormat();
export function formatCount(n) {
  n = Number(n) || 0;
  return n >= 10000 ? compact.format(n) : full.format(n);
}
export function plural(n, one, many) {
  return `${formatCount(n)} ${Number(n) === 1 ? one : many}`;
}

// ---------------------------------------------------------------- avatars

const AVATAR_COLORS = ['#f58529', '#dd2a7b', '#8134af', '#515bd4', '#1fa67a', '#e2a300', '#0a84ff', '#d9480f'];

export function avatar(account, size = 32) {
  const name = account?.username || '?';
  const wrap = h('span', { class: 'avatar', 'aria-hidden': 'true' });
  wrap.style.width = wrap.style.height = `${size}px`;
  if (account?.avatar_url) {
    wrap.append(h('img', { src: account.avatar_url, alt: '', width: size, height: size, loading: 'lazy', decoding: 'async' }));
  } else {
    let hash = 0;
    for (const ch of name) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
    wrap.classList.add('avatar-initial');
    wrap.style.backgroundColor = AVATAR_COLORS[hash % AVATAR_COLORS.length];
    wrap.style.fontSize = `${Math.round(size * 0.42)}px`;
    wrap.textContent = [...name][0].toUpperCase();
  }
  return wrap;
}

export function userHref(username) {
  return `#/u/${encodeURIComponent(username)}`;
}

// ---------------------------------------------------------------- feedback

let toastTimer = null;
export function toast(message, { error = false, timeout = 3500 } = {}) {
  const box = document.getElementById('toasts');
  if (!box) return;
  const item = h('div', { class: `toast${error ? ' toast-error' : ''}` }, message);
  box.replaceChildren(item);
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => item.remove(), timeout);
}

export function spinner(label = 'Loading') {
  return h('div', { class: 'spinner-wrap', role: 'progressbar', 'aria-label': label },
    h('span', { class: 'spinner' }));
}

/** A friendly empty (or unavailable) state. */
export function emptyState({ iconName = 'image', title, text = '', action = null }) {
  return h('section', { class: 'empty-state' },
    h('span', { class: 'empty-icon' }, icon(iconName, { size: 40 })),
    h('h2', { class: 'empty-title' }, title),
    text ? h('p', { class: 'muted' }, text) : null,
    action);
}

export function errorState(err, retry) {
  return h('section', { class: 'empty-state', role: 'alert' },
    h('h2', { class: 'empty-title' }, 'Something went wrong'),
    h('p', { class: 'muted' }, err?.message || 'Please try again.'),
    retry ? h('button', { type: 'button', class: 'btn', onclick: retry }, 'Try again') : null);
}

/** A visually hidden label for inputs whose purpose is shown by placeholder/icon. */
export function srOnly(text) {
  return h('span', { class: 'sr-only' }, text);
}

let idCounter = 0;
export function uid(prefix = 'id') {
  idCounter += 1;
  return `${prefix}-${idCounter}`;
}

export function debounce(fn, ms) {
  let t = null;
  const wrapped = (...args) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...args), ms);
  };
  wrapped.cancel = () => clearTimeout(t);
  return wrapped;
}

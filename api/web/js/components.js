// Shared building blocks: infinite lists, account rows, follow buttons,
// dialogs, responsive images.
import { api, following, session, setFollow } from './api.js';
import { avatar, emptyState, h, icon, spinner, toast, userHref } from './dom.js';

// ---------------------------------------------------------------- images
// Widths of the server's variants (media/images.py): thumb is a square of
// 150 px, small 320 px wide, large 1080 px wide; never upscaled, so a variant
// is at most as wide as the original. srcset tells the browser these true
// widths and it picks the smallest variant that is sharp at the shown size.
export const VARIANT_WIDTHS = { thumb: 150, small: 320, large: 1080 };

function variantWidth(media, name) {
  const w = Number(media?.width) || VARIANT_WIDTHS[name];
  const side = name === 'thumb' ? Math.min(w, Number(media?.height) || w) : w;
  return Math.max(1, Math.min(side, VARIANT_WIDTHS[name]));
}

/**
 * <picture> for one Media: `small` on phones, `large` on wider screens, with
 * srcset/sizes so high-density phones may take `large`. Lazy unless eager.
 */
export function mediaPicture(media, alt, { eager = false, sizes = '(max-width: 767px) 100vw, 470px', desktopSizes = '470px' } = {}) {
  const urls = media?.urls || {};
  const small = urls.small || urls.large || urls.original;
  const large = urls.large || urls.original || small;
  const img = h('img', {
    src: small,
    srcset: `${small} ${variantWidth(media, 'small')}w, ${large} ${variantWidth(media, 'large')}w`,
    sizes,
    alt,
    loading: eager ? 'eager' : 'lazy',
    decoding: 'async',
    draggable: false,
    width: media?.width || null,
    height: media?.height || null,
  });
  if (eager) img.setAttribute('fetchpriority', 'high');
  const source = h('source', { media: '(min-width: 768px)', srcset: `${large} ${variantWidth(media, 'large')}w`, sizes: desktopSizes });
  return h('picture', null, source, img);
}

/** A square thumbnail image for grids. */
export function thumbImage(media, alt) {
  const urls = media?.urls || {};
  const thumb = urls.thumb || urls.small || urls.original;
  const small = urls.small || thumb;
  return h('img', {
    src: thumb,
    srcset: `${thumb} ${variantWidth(media, 'thumb')}w, ${small} ${variantWidth(media, 'small')}w`,
    sizes: '(max-width: 767px) 33vw, 300px',
    alt,
    loading: 'lazy',
    decoding: 'async',
    draggable: false,
  });
}

export function altFor(post, index = 0, count = 1) {
  const who = post?.author?.display_name || post?.author?.username || 'someone';
  const caption = String(post?.caption || '').replace(/\s+/g, ' ').trim();
  const short = caption.length > 120 ? `${caption.slice(0, 117)}…` : caption;
  const which = count > 1 ? ` (${index + 1} of ${count})` : '';
  return short ? `Photo by ${who}${which}: ${short}` : `Photo by ${who}${which}`;
}

// ---------------------------------------------------------------- infinite lists

/**
 * Walks next_cursor with an IntersectionObserver on a sentinel.
 * fetchPage(cursor, signal) -> {items, next_cursor}
 * Returns {el, items (container), count()}.
 */
export function infiniteList({ fetchPage, renderItem, signal, listClass = 'list', listTag = 'div', empty, unavailable, forbidden, onLoaded, label }) {
  // A <div> list is a group (a "feed" for a list of posts) so that its label is allowed.
  const role = listTag === 'div' ? (listClass === 'feed' ? 'feed' : 'group') : null;
  const items = h(listTag, { class: listClass, role, 'aria-label': label || null, 'aria-busy': 'true' });
  const status = h('div', { class: 'list-status' });
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
  const el = h('div', { class: 'infinite' }, items, sentinel, status);
  const seen = new Set();
  let cursor = null;
  let done = false;
  let loading = false;
  let count = 0;

  const observer = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting)) loadMore();
  }, { rootMargin: '900px 0px' });

  function nearEnd() {
    if (!sentinel.isConnected) return false;
    const rect = sentinel.getBoundingClientRect();
    return rect.top < window.innerHeight + 900;
  }

  async function loadMore() {
    if (loading || done || signal?.aborted) return;
    loading = true;
    items.setAttribute('aria-busy', 'true');
    status.replaceChildren(spinner());
    try {
      const data = await fetchPage(cursor, signal);
      if (signal?.aborted) return;
      const page = Array.isArray(data?.items) ? data.items : [];
      for (const item of page) {
        const key = item?.id ?? item?.username ?? item?.name ?? JSON.stringify(item);
        if (seen.has(key)) continue;
        seen.add(key);
        const node = renderItem(item);
        if (node) items.append(node);
        count += 1;
      }
      cursor = data?.next_cursor || null;
      done = !cursor;
      status.replaceChildren();
      if (done) {
        observer.disconnect();
        if (count === 0 && empty) status.replaceChildren(empty());
      }
      onLoaded?.(count, done);
    } catch (err) {
      if (err?.name === 'AbortError' || signal?.aborted) return;
      if (count === 0 && err.status === 403 && forbidden) {
        done = true;
        observer.disconnect();
        status.replaceChildren(forbidden(err));
        return;
      }
      if (count === 0 && (err.status === 404 || err.status === 405 || err.status === 501) && unavailable) {
        done = true;
        observer.disconnect();
        status.replaceChildren(unavailable(err));
        return;
      }
      status.replaceChildren(h('div', { class: 'list-error', role: 'alert' },
        h('p', null, err.message || 'Could not load more.'),
        h('button', { type: 'button', class: 'btn btn-secondary', onclick: () => loadMore() }, 'Try again')));
      return;
    } finally {
      loading = false;
      items.setAttribute('aria-busy', 'false');
    }
    // The observer fires on changes only: keep going while the end is still in view.
    if (!done && nearEnd()) queueMicrotask(loadMore);
  }

  observer.observe(sentinel);
  signal?.addEventListener('abort', () => observer.disconnect(), { once: true });
  loadMore();
  return { el, items, count: () => count, loadMore };
}

// ---------------------------------------------------------------- accounts

export function followButton(account, { onChange, compact = false } = {}) {
  if (session.isMe(account.username)) return null;
  const btn = h('button', { type: 'button', class: `btn btn-primary${compact ? ' btn-sm' : ''}` }, 'Follow');
  if (!session.signedIn) {
    btn.addEventListener('click', () => {
      location.hash = `#/login?next=${encodeURIComponent(location.hash || '#/')}`;
    });
    return btn;
  }
  // 'none' | 'requested' (asked a private account, not approved yet) | 'following'
  let state = 'none';
  let busy = true;
  btn.disabled = true;
  const LABELS = { none: 'Follow', requested: 'Requested', following: 'Following' };
  const render = () => {
    btn.textContent = LABELS[state];
    btn.className = `btn ${state === 'none' ? 'btn-primary' : 'btn-secondary'}${compact ? ' btn-sm' : ''}`;
    btn.title = state === 'following' ? `Unfollow ${account.username}`
      : state === 'requested' ? `Withdraw your request to follow ${account.username}` : `Follow ${account.username}`;
    btn.disabled = busy;
  };
  render();
  (account.requested === true ? Promise.resolve('requested')
    : following.isFollowing(account).then((value) => (value ? 'following' : 'none')))
    .then((value) => { state = value; })
    .catch(() => { state = 'none'; })
    .finally(() => { busy = false; render(); });
  btn.addEventListener('click', async () => {
    if (busy) return;
    const before = state;
    busy = true;
    render();
    try {
      state = await setFollow(account.username, before === 'none');
      const delta = (state === 'following' ? 1 : 0) - (before === 'following' ? 1 : 0);
      if (delta) onChange?.(delta);
    } catch (err) {
      state = before;
      toast(err.message, { error: true });
    } finally {
      busy = false;
      render();
    }
  });
  return btn;
}

export function accountRow(account, { withFollow = true, onNavigate, onFollowChange } = {}) {
  const name = account.display_name && account.display_name !== account.username ? account.display_name : '';
  const link = h('a', { class: 'account-link', href: userHref(account.username), onclick: onNavigate || null },
    avatar(account, 44),
    h('span', { class: 'account-names' },
      h('span', { class: 'account-username' }, account.username),
      name ? h('span', { class: 'account-display muted' }, name) : null));
  return h('li', { class: 'account-row' }, link, withFollow ? followButton(account, { compact: true, onChange: onFollowChange }) : null);
}

// ---------------------------------------------------------------- dialogs

/** A modal <dialog> with a title and a close button; removed from the DOM when closed. */
export function openDialog(title, body, { cls = '' } = {}) {
  const heading = h('h2', { class: 'dialog-title' }, title);
  const close = h('button', { type: 'button', class: 'icon-btn dialog-close', 'aria-label': 'Close' }, icon('close'));
  const dialog = h('dialog', { class: `dialog ${cls}` },
    h('header', { class: 'dialog-head' }, heading, close),
    h('div', { class: 'dialog-body' }, body));
  heading.id = `dlg-${Math.random().toString(36).slice(2)}`;
  dialog.setAttribute('aria-labelledby', heading.id);
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) dialog.close(); // backdrop click
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  window.addEventListener('hashchange', () => dialog.open && dialog.close(), { once: true });
  return dialog;
}

/** A list of accounts inside a dialog (likers). */
export function accountsDialog(title, path) {
  const ctrl = new AbortController();
  const list = infiniteList({
    fetchPage: (cursor, signal) => api(path, { query: { limit: 20, cursor }, signal }),
    renderItem: (acc) => accountRow(acc),
    signal: ctrl.signal,
    listTag: 'ul',
    listClass: 'account-list',
    label: title,
    empty: () => h('p', { class: 'muted center pad' }, 'No one yet.'),
    unavailable: () => h('p', { class: 'muted center pad' }, 'This list is not available yet.'),
  });
  const dialog = openDialog(title, list.el, { cls: 'dialog-list' });
  dialog.addEventListener('close', () => ctrl.abort());
  return dialog;
}

/** An action sheet: buttons stacked in a small dialog. actions: [{label, danger, onSelect}] */
export function actionSheet(title, actions) {
  const dialog = h('dialog', { class: 'dialog sheet', 'aria-label': title });
  const render = (list) => {
    dialog.replaceChildren(...list.map((a) => h('button', {
      type: 'button',
      class: `sheet-btn${a.danger ? ' danger' : ''}${a.strong ? ' strong' : ''}`,
      onclick: async () => {
        if (a.then) {
          render(a.then);
          return;
        }
        dialog.close();
        await a.onSelect?.();
      },
    }, a.label)), h('button', { type: 'button', class: 'sheet-btn', onclick: () => dialog.close() }, 'Cancel'));
  };
  render(actions);
  dialog.addEventListener('click', (e) => {
    if (e.target === dialog) dialog.close();
  });
  dialog.addEventListener('close', () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

export function unavailableState(what) {
  return emptyState({
    iconName: 'explore',
    title: `${what} is coming soon`,
    text: "This part of photostream isn't switched on yet. Check back a little later.",
  });
}

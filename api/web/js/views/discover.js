// A post's own page, hashtag pages, explore and search.
import { api, lister, session } from '../api.js';
import { accountRow, infiniteList, unavailableState } from '../components.js';
import { debounce, emptyState, formatCount, h, icon, plural, spinner, uid, userHref } from '../dom.js';
import { gridItem, postCard } from '../post.js';

export async function postView(root, { params, signal }) {
  const id = params[0];
  let post;
  try {
    post = await api(`/v1/posts/${encodeURIComponent(id)}`, { signal });
  } catch (err) {
    if (err.status === 404) {
      document.title = 'Post not found • photostream';
      root.append(emptyState({
        iconName: 'image',
        title: "Sorry, this post isn't available.",
        text: 'The link may be broken, or the post may have been removed.',
        action: h('a', { class: 'btn btn-primary', href: '#/' }, 'Go back to photostream'),
      }));
      return;
    }
    throw err;
  }
  const who = post.author?.username || '';
  const caption = String(post.caption || '').replace(/\s+/g, ' ').trim();
  document.title = caption ? `${who} on photostream: “${caption.slice(0, 60)}”` : `Post by ${who} • photostream`;
  const card = postCard(post, {
    mode: 'page',
    eager: true,
    onDeleted: () => { location.hash = userHref(who); },
  });
  const more = h('section', { class: 'more-from' });
  root.append(h('div', { class: 'post-page' }, h('h1', { class: 'sr-only' }, `Post by ${who}`), card, more));

  // More from this author (best effort).
  try {
    const data = await api(`/v1/accounts/${encodeURIComponent(who)}/posts`, { query: { limit: 7 }, signal });
    const others = (data?.items || []).filter((p) => String(p.id) !== String(post.id)).slice(0, 6);
    if (others.length) {
      more.append(
        h('h2', { class: 'more-title muted' }, 'More posts from ', h('a', { href: userHref(who), class: 'strong' }, who)),
        h('div', { class: 'grid', role: 'group', 'aria-label': `More posts from ${who}` }, others.map(gridItem)));
    }
  } catch {
    /* optional */
  }
}

export async function tagView(root, { params, signal }) {
  const tag = params[0].replace(/^#/, '').toLowerCase();
  document.title = `#${tag} • photostream`;
  const countEl = h('p', { class: 'muted' });
  const head = h('header', { class: 'tag-head' },
    h('span', { class: 'tag-badge', 'aria-hidden': 'true' }, icon('tag', { size: 40 })),
    h('div', null, h('h1', { class: 'page-title' }, `#${tag}`), countEl));
  const grid = infiniteList({
    fetchPage: lister(`/v1/tags/${encodeURIComponent(tag)}/posts`, { limit: 18 }),
    renderItem: gridItem,
    signal,
    listClass: 'grid',
    label: `Posts tagged #${tag}`,
    empty: () => emptyState({ iconName: 'tag', title: `No posts with #${tag} yet`, text: 'Be the first: add it to a caption.', action: h('a', { class: 'btn btn-primary', href: '#/new' }, 'New post') }),
    unavailable: () => emptyState({ iconName: 'tag', title: `No posts with #${tag} yet`, text: 'Hashtag pages will fill up as people share photos.' }),
    onLoaded: (count, done) => {
      countEl.textContent = done ? plural(count, 'post', 'posts') : `${formatCount(count)}+ posts`;
    },
  });
  root.append(h('div', { class: 'wide-page' }, head, grid.el));
}

export async function exploreView(root, { signal }) {
  document.title = 'Explore • photostream';
  const searchLink = h('a', { class: 'search-fake', href: '#/search' }, icon('search', { size: 18 }), h('span', null, 'Search'));
  const grid = infiniteList({
    fetchPage: lister('/v1/explore', { limit: 24 }),
    renderItem: gridItem,
    signal,
    listClass: 'grid explore-grid',
    label: 'Explore',
    empty: () => emptyState({ iconName: 'explore', title: 'Nothing to explore yet', text: 'When people share photos, the popular ones show up here.', action: h('a', { class: 'btn btn-primary', href: '#/new' }, 'Share a photo') }),
    unavailable: () => unavailableState('Explore'),
  });
  root.append(h('div', { class: 'wide-page' },
    h('h1', { class: 'sr-only' }, 'Explore'),
    h('div', { class: 'explore-search' }, searchLink),
    grid.el));
}

// ---------------------------------------------------------------- who to follow

/** "Suggested for you": accounts followed by the accounts `username` follows, with how
 * many of them follow each. Null when there is nothing to suggest (or no server support). */
export async function suggestionsSection(username, { signal, max = 6, title = 'Suggested for you', onFollowChange = null } = {}) {
  let data;
  try {
    data = await api(`/v1/accounts/${encodeURIComponent(username)}/suggestions`, { query: { limit: max }, signal });
  } catch (err) {
    if (err.name === 'AbortError') throw err;
    return null; // a nicety: never break the page around it
  }
  const items = (data?.items || []).filter((a) => !session.isMe(a.username));
  if (!items.length) return null;
  return h('section', { class: 'suggestions suggestions-section', 'aria-label': title },
    h('h2', { class: 'rail-title muted' }, title),
    h('ul', { class: 'account-list' }, items.map((a) => {
      const row = accountRow(a, { onFollowChange });
      const names = row.querySelector('.account-names');
      names?.append(h('span', { class: 'muted small suggestion-why' },
        `Followed by ${plural(a.followed_by_count || 0, 'person', 'people')} you follow`));
      return row;
    })));
}

// ---------------------------------------------------------------- search

const SEARCH_MISSING = 'photostream.searchMissing';

const TYPES = [
  { type: 'accounts', label: 'Accounts' },
  { type: 'tags', label: 'Tags' },
  { type: 'posts', label: 'Posts' },
];

export async function searchView(root, { query, signal }) {
  document.title = 'Search • photostream';
  let type = TYPES.some((t) => t.type === query.get('type')) ? query.get('type') : 'accounts';
  const inputId = uid('search');
  const input = h('input', {
    id: inputId, type: 'search', class: 'input search-input', placeholder: 'Search', autocomplete: 'off',
    spellcheck: 'false', autocapitalize: 'none', role: 'combobox', 'aria-expanded': 'false', 'aria-autocomplete': 'list',
  });
  input.value = query.get('q') || '';
  const clear = h('button', { type: 'button', class: 'icon-btn search-clear', 'aria-label': 'Clear search', hidden: !input.value }, icon('close', { size: 16 }));
  const results = h('div', { class: 'search-results', id: uid('results'), 'aria-live': 'polite' });
  input.setAttribute('aria-controls', results.id);

  const tabButtons = TYPES.map((t) => h('button', {
    type: 'button', role: 'tab', class: 'tab', id: `tab-${t.type}`, 'aria-selected': String(t.type === type), tabindex: t.type === type ? '0' : '-1',
    'aria-controls': results.id, dataset: { type: t.type },
  }, t.label));
  const tablist = h('div', { class: 'tabs search-tabs', role: 'tablist', 'aria-label': 'What to search' }, tabButtons);
  results.setAttribute('role', 'tabpanel');

  const form = h('form', { class: 'search-form', role: 'search' },
    h('label', { for: inputId, class: 'sr-only' }, 'Search photostream'),
    h('span', { class: 'search-icon', 'aria-hidden': 'true' }, icon('search', { size: 18 })),
    input, clear);

  let inflight = null;
  function syncUrl() {
    const q = input.value.trim();
    const params = new URLSearchParams();
    if (q) params.set('q', q);
    if (type !== 'accounts') params.set('type', type);
    const hash = `#/search${params.toString() ? `?${params}` : ''}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  async function run() {
    const q = input.value.trim().replace(type === 'tags' ? /^#/ : type === 'accounts' ? /^@/ : /^$/, '');
    syncUrl();
    inflight?.abort();
    if (!q) {
      input.setAttribute('aria-expanded', 'false');
      results.replaceChildren(h('p', { class: 'muted center pad' }, type === 'tags' ? 'Search for a hashtag.' : type === 'posts' ? 'Search captions of posts.' : 'Search for people by username or name.'));
      // With nothing typed yet, people you may know.
      if (type === 'accounts' && session.me?.username) {
        suggestionsSection(session.me.username, { signal }).then((section) => {
          if (section && !input.value.trim()) results.append(section);
        }).catch(() => {});
      }
      return;
    }
    inflight = new AbortController();
    const mine = inflight;
    signal.addEventListener('abort', () => mine.abort(), { once: true });
    results.setAttribute('aria-busy', 'true');
    if (!results.firstChild || results.querySelector('.spinner-wrap')) results.replaceChildren(spinner('Searching'));
    try {
      if (sessionStorage.getItem(SEARCH_MISSING)) {
        await fallback(q, mine.signal);
        return;
      }
      const data = await api('/v1/search', { query: { q, type, limit: 20 }, signal: mine.signal });
      if (mine.signal.aborted) return;
      renderResults(q, data?.items || []);
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (err.status === 404 || err.status === 405 || err.status === 501) {
        sessionStorage.setItem(SEARCH_MISSING, '1');
        await fallback(q, mine.signal).catch(() => {});
      } else results.replaceChildren(h('p', { class: 'form-error center pad', role: 'alert' }, err.message));
    } finally {
      results.setAttribute('aria-busy', 'false');
    }
  }

  // Until the server has search: an exact username, or a hashtag page link.
  async function fallback(q, fallbackSignal) {
    const note = h('p', { class: 'muted small center pad' }, 'Full search is coming soon. Until then, type an exact username or hashtag.');
    if (type === 'accounts') {
      const name = q.toLowerCase();
      let account = null;
      if (/^[a-z0-9._]{1,30}$/.test(name)) {
        try {
          account = await api(`/v1/accounts/${encodeURIComponent(name)}`, { signal: fallbackSignal });
        } catch (err) {
          if (err.name === 'AbortError') throw err;
        }
      }
      if (fallbackSignal.aborted) return;
      results.replaceChildren(
        account ? h('ul', { class: 'account-list', 'aria-label': 'Accounts' }, accountRow(account)) : h('p', { class: 'muted center pad' }, `No account called “${q}”.`),
        note);
    } else if (type === 'tags') {
      const tag = q.replace(/^#/, '').toLowerCase();
      results.replaceChildren(h('ul', { class: 'account-list', 'aria-label': 'Hashtags' }, h('li', { class: 'account-row' },
        h('a', { class: 'account-link', href: `#/tags/${encodeURIComponent(tag)}` },
          h('span', { class: 'tag-circle', 'aria-hidden': 'true' }, '#'),
          h('span', { class: 'account-names' }, h('span', { class: 'account-username' }, `#${tag}`), h('span', { class: 'muted' }, 'See posts'))))), note);
    } else {
      results.replaceChildren(unavailableState('Searching posts'));
    }
  }

  function renderResults(q, items) {
    input.setAttribute('aria-expanded', String(items.length > 0));
    if (!items.length) {
      results.replaceChildren(h('p', { class: 'muted center pad' }, `No results for “${q}”.`));
      return;
    }
    if (type === 'accounts') {
      results.replaceChildren(h('ul', { class: 'account-list', 'aria-label': 'Accounts' }, items.map((a) => accountRow(a))));
    } else if (type === 'tags') {
      results.replaceChildren(h('ul', { class: 'account-list', 'aria-label': 'Hashtags' }, items.map((t) => h('li', { class: 'account-row' },
        h('a', { class: 'account-link', href: `#/tags/${encodeURIComponent(t.name)}` },
          h('span', { class: 'tag-circle', 'aria-hidden': 'true' }, '#'),
          h('span', { class: 'account-names' },
            h('span', { class: 'account-username' }, `#${t.name}`),
            h('span', { class: 'muted' }, plural(t.post_count || 0, 'post', 'posts'))))))));
    } else {
      results.replaceChildren(h('div', { class: 'grid', role: 'group', 'aria-label': 'Posts' }, items.map(gridItem)));
    }
  }

  const debounced = debounce(run, 250);
  input.addEventListener('input', () => {
    clear.hidden = !input.value;
    debounced();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'ArrowDown') {
      const firstLink = results.querySelector('a');
      if (firstLink) { e.preventDefault(); firstLink.focus(); }
    } else if (e.key === 'Escape') {
      input.value = '';
      clear.hidden = true;
      run();
    }
  });
  results.addEventListener('keydown', (e) => {
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return;
    const links = [...results.querySelectorAll('a')];
    const i = links.indexOf(document.activeElement);
    if (i < 0) return;
    e.preventDefault();
    if (e.key === 'ArrowDown') links[Math.min(links.length - 1, i + 1)].focus();
    else if (i === 0) input.focus();
    else links[i - 1].focus();
  });
  clear.addEventListener('click', () => {
    input.value = '';
    clear.hidden = true;
    input.focus();
    run();
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    debounced.cancel();
    run();
  });
  const selectTab = (btn) => {
    type = btn.dataset.type;
    for (const b of tabButtons) {
      const on = b === btn;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
    }
    results.setAttribute('aria-labelledby', btn.id);
    run();
  };
  tablist.addEventListener('click', (e) => {
    const btn = e.target.closest('[role="tab"]');
    if (btn) selectTab(btn);
  });
  tablist.addEventListener('keydown', (e) => {
    const i = tabButtons.indexOf(document.activeElement);
    if (i < 0 || (e.key !== 'ArrowRight' && e.key !== 'ArrowLeft')) return;
    e.preventDefault();
    const next = tabButtons[(i + (e.key === 'ArrowRight' ? 1 : tabButtons.length - 1)) % tabButtons.length];
    next.focus();
    selectTab(next);
  });
  results.setAttribute('aria-labelledby', `tab-${type}`);
  signal.addEventListener('abort', () => debounced.cancel(), { once: true });

  root.append(h('div', { class: 'narrow-page search-page' },
    h('h1', { class: 'page-title' }, 'Search'), form, tablist, results));
  input.focus();
  run();
}


// A post: header, swipeable carousel, like/comment/share actions, caption,
// inline comments. Used by the feed (compact) and the post page (expanded).
import { api, session } from './api.js';
import { accountsDialog, actionSheet, altFor, mediaPicture, thumbImage } from './components.js';
import { avatar, formatCount, h, icon, plural, richText, timeEl, toast, uid, userHref } from './dom.js';

function postHref(post) {
  return `#/p/${encodeURIComponent(post.id)}`;
}

function requireSignIn() {
  if (session.signedIn) return true;
  location.hash = `#/login?next=${encodeURIComponent(location.hash || '#/')}`;
  return false;
}

// ---------------------------------------------------------------- carousel

export function carousel(post, { eager = false, onDoubleTap, sizes, desktopSizes } = {}) {
  const media = Array.isArray(post.media) ? post.media : [];
  const n = media.length;
  const first = media[0] || {};
  const ratio = first.width && first.height ? Math.min(1.91, Math.max(0.8, first.width / first.height)) : 1;
  const root = h('div', { class: 'carousel' });
  root.style.aspectRatio = String(ratio);
  if (n > 1) {
    root.setAttribute('role', 'group');
    root.setAttribute('aria-roledescription', 'carousel');
    root.setAttribute('aria-label', `${n} photos by ${post.author?.username || 'someone'}`);
  }
  const track = h('div', { class: 'carousel-track', tabindex: n > 1 ? '0' : null, 'aria-label': n > 1 ? 'Photos, use arrow keys to move' : null });
  media.forEach((m, i) => {
    track.append(h('div', {
      class: 'slide',
      role: n > 1 ? 'group' : null,
      'aria-roledescription': n > 1 ? 'slide' : null,
      'aria-label': n > 1 ? `${i + 1} of ${n}` : null,
    }, mediaPicture(m, altFor(post, i, n), { eager: eager && i === 0, sizes, desktopSizes })));
  });
  if (n === 0) track.append(h('div', { class: 'slide slide-missing' }, icon('image', { size: 48 })));
  root.append(track);

  const burst = h('span', { class: 'heart-burst', 'aria-hidden': 'true' }, icon('heart', { filled: true, size: 96 }));
  root.append(burst);

  if (n > 1) {
    const prev = h('button', { type: 'button', class: 'carousel-btn prev', 'aria-label': 'Previous photo' }, icon('left', { size: 18 }));
    const next = h('button', { type: 'button', class: 'carousel-btn next', 'aria-label': 'Next photo' }, icon('right', { size: 18 }));
    const dots = h('div', { class: 'carousel-dots', 'aria-hidden': 'true' }, media.map(() => h('span', { class: 'dot' })));
    const counter = h('span', { class: 'carousel-counter', 'aria-live': 'polite' });
    let index = -1;
    const update = () => {
      const width = track.clientWidth || 1;
      const i = Math.max(0, Math.min(n - 1, Math.round(track.scrollLeft / width)));
      if (i === index) return;
      index = i;
      prev.hidden = i === 0;
      next.hidden = i === n - 1;
      [...dots.children].forEach((d, j) => d.classList.toggle('active', j === i));
      counter.textContent = `${i + 1}/${n}`;
    };
    let frame = 0;
    track.addEventListener('scroll', () => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(update);
    }, { passive: true });
    const go = (delta) => {
      const width = track.clientWidth;
      track.scrollTo({ left: Math.max(0, Math.min(n - 1, index + delta)) * width, behavior: matchMedia('(prefers-reduced-motion: reduce)').matches ? 'auto' : 'smooth' });
    };
    prev.addEventListener('click', () => go(-1));
    next.addEventListener('click', () => go(1));
    track.addEventListener('keydown', (e) => {
      if (e.key === 'ArrowLeft') { e.preventDefault(); go(-1); }
      if (e.key === 'ArrowRight') { e.preventDefault(); go(1); }
    });
    root.append(prev, next, dots, counter);
    update();
  }

  // Double-tap (touch) or double-click (mouse) to like.
  const pop = () => {
    burst.classList.remove('pop');
    void burst.offsetWidth; // restart the animation
    burst.classList.add('pop');
  };
  burst.addEventListener('animationend', () => burst.classList.remove('pop'));
  root.addEventListener('dblclick', (e) => {
    if (e.target.closest('button')) return;
    e.preventDefault();
    pop();
    onDoubleTap?.();
  });
  let lastTap = 0;
  let lastX = 0;
  let lastY = 0;
  track.addEventListener('pointerup', (e) => {
    if (e.pointerType !== 'touch') return;
    const now = e.timeStamp;
    if (now - lastTap < 320 && Math.abs(e.clientX - lastX) < 30 && Math.abs(e.clientY - lastY) < 30) {
      lastTap = 0;
      pop();
      onDoubleTap?.();
    } else {
      lastTap = now;
      lastX = e.clientX;
      lastY = e.clientY;
    }
  });
  return root;
}

// ---------------------------------------------------------------- comments

function commentItem(comment, post, { onDeleted }) {
  const author = comment.author || {};
  const canDelete = session.signedIn && (session.isMe(author.username) || session.isMe(post.author?.username));
  const li = h('li', { class: 'comment', dataset: { id: String(comment.id) } },
    h('a', { href: userHref(author.username), class: 'comment-avatar', tabindex: '-1', 'aria-hidden': 'true' }, avatar(author, 28)),
    h('div', { class: 'comment-main' },
      h('p', { class: 'comment-text' },
        h('a', { class: 'username', href: userHref(author.username) }, author.username), ' ',
        richText(comment.text)),
      h('div', { class: 'comment-meta muted' }, timeEl(comment.created_at))));
  if (canDelete) {
    const del = h('button', { type: 'button', class: 'icon-btn comment-delete', 'aria-label': `Delete comment by ${author.username}`, title: 'Delete comment' }, icon('trash', { size: 16 }));
    del.addEventListener('click', async () => {
      del.disabled = true;
      li.classList.add('pending');
      try {
        await api(`/v1/comments/${encodeURIComponent(comment.id)}`, { method: 'DELETE' });
        li.remove();
        onDeleted?.();
        toast('Comment deleted');
      } catch (err) {
        li.classList.remove('pending');
        del.disabled = false;
        toast(err.message, { error: true });
      }
    });
    li.append(del);
  }
  return li;
}

function commentsSection(post, state, { expanded, onCountChange }) {
  const list = h('ul', { class: 'comments', 'aria-label': 'Comments' });
  const local = h('ul', { class: 'comments comments-local', 'aria-label': 'Your new comments' });
  const toggle = h('button', { type: 'button', class: 'link-btn muted view-comments' });
  const status = h('div', { class: 'comments-status' });
  const rendered = new Map();
  let cursor = null;
  let loaded = false;
  let loading = false;
  let open = expanded;

  const onDeleted = (id) => () => {
    rendered.delete(String(id));
    state.comments = Math.max(0, state.comments - 1);
    onCountChange();
  };

  function renderToggle() {
    // Collapsed: offer the comments not shown yet (your own new ones are shown).
    const hiddenCount = state.comments - rendered.size;
    const more = open ? (cursor ? 'Load more comments' : '') : (hiddenCount > 0 ? (state.comments === 1 ? 'View 1 comment' : `View all ${formatCount(state.comments)} comments`) : '');
    toggle.textContent = more;
    toggle.hidden = !more;
    toggle.setAttribute('aria-expanded', String(open));
  }

  async function loadPage() {
    if (loading) return;
    loading = true;
    toggle.disabled = true;
    status.textContent = 'Loading comments…';
    try {
      const data = await api(`/v1/posts/${encodeURIComponent(post.id)}/comments`, { query: { limit: 20, cursor } });
      for (const c of data?.items || []) {
        const key = String(c.id);
        const existing = rendered.get(key);
        if (existing) {
          list.append(existing); // moves a local one into its place in order
          continue;
        }
        const li = commentItem(c, post, { onDeleted: onDeleted(c.id) });
        rendered.set(key, li);
        list.append(li);
      }
      cursor = data?.next_cursor || null;
      loaded = true;
      status.textContent = '';
    } catch (err) {
      status.textContent = err.status === 404 ? 'Comments are not available.' : err.message;
    } finally {
      loading = false;
      toggle.disabled = false;
      renderToggle();
    }
  }

  toggle.addEventListener('click', () => {
    open = true;
    loadPage();
  });

  function addLocal(comment) {
    const li = commentItem(comment, post, { onDeleted: onDeleted(comment.id) });
    rendered.set(String(comment.id), li);
    local.append(li);
    state.comments += 1;
    onCountChange();
  }

  if (open) loadPage();
  renderToggle();
  return { el: h('div', { class: 'comments-wrap' }, toggle, list, local, status), addLocal, renderToggle, isLoaded: () => loaded };
}

function commentForm(post, { onAdded }) {
  const id = uid('comment');
  const input = h('textarea', { id, class: 'comment-input', rows: '1', maxlength: '2200', placeholder: 'Add a comment…', autocomplete: 'off' });
  const submit = h('button', { type: 'submit', class: 'link-btn accent strong', disabled: true }, 'Post');
  const form = h('form', { class: 'comment-form', novalidate: true },
    h('label', { for: id, class: 'sr-only' }, `Add a comment to ${post.author?.username || 'this'}'s post`),
    input, submit);
  const resize = () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 96)}px`;
  };
  input.addEventListener('input', () => {
    submit.disabled = !input.value.trim();
    resize();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!requireSignIn()) return;
    const text = input.value.trim();
    if (!text) return;
    submit.disabled = true;
    input.readOnly = true;
    try {
      const comment = await api(`/v1/posts/${encodeURIComponent(post.id)}/comments`, { method: 'POST', body: { text } });
      input.value = '';
      resize();
      onAdded({ ...comment, author: comment?.author || session.me, text: comment?.text ?? text });
    } catch (err) {
      toast(err.message, { error: true });
      submit.disabled = false;
    } finally {
      input.readOnly = false;
    }
  });
  return { el: form, focus: () => input.focus() };
}

// ---------------------------------------------------------------- the post

/**
 * mode 'feed': compact card with collapsed comments.
 * mode 'page': comments expanded; two columns on desktop.
 */
export function postCard(post, { mode = 'feed', eager = false, onDeleted } = {}) {
  const author = post.author || {};
  const state = {
    liked: Boolean(post.liked_by_me),
    likes: Number(post.like_count) || 0,
    comments: Number(post.comment_count) || 0,
    caption: post.caption || '',
  };
  const isAuthor = session.isMe(author.username);
  const headingId = uid('post');

  // header
  const more = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'More options' }, icon('more'));
  const header = h('header', { class: 'post-head' },
    h('a', { href: userHref(author.username), class: 'post-avatar', tabindex: '-1', 'aria-hidden': 'true' }, avatar(author, 32)),
    h('div', { class: 'post-who' },
      h('a', { href: userHref(author.username), class: 'username', id: headingId }, author.username),
      h('span', { class: 'muted dot-sep', 'aria-hidden': 'true' }, '•'),
      h('a', { href: postHref(post), class: 'muted post-time' }, timeEl(post.created_at))),
    more);

  // actions
  const heartIcon = () => icon('heart', { filled: state.liked });
  const likeBtn = h('button', { type: 'button', class: 'icon-btn like-btn' });
  const commentBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Comment' }, icon('comment'));
  const shareBtn = h('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Copy link to post' }, icon('send'));
  const likesBtn = h('button', { type: 'button', class: 'link-btn strong likes-count' });
  const likesLine = h('div', { class: 'post-likes' }, likesBtn);

  function renderLikes() {
    likeBtn.replaceChildren(heartIcon());
    likeBtn.classList.toggle('liked', state.liked);
    likeBtn.setAttribute('aria-pressed', String(state.liked));
    likeBtn.setAttribute('aria-label', 'Like');
    likesBtn.textContent = state.likes > 0 ? plural(state.likes, 'like', 'likes') : 'Be the first to like this';
    likesBtn.classList.toggle('strong', state.likes > 0);
    likesBtn.dataset.count = String(state.likes);
  }

  let likeSeq = 0;
  async function setLiked(target) {
    if (!requireSignIn()) return;
    if (target === state.liked) return;
    const before = { liked: state.liked, likes: state.likes };
    state.liked = target;
    state.likes = Math.max(0, state.likes + (target ? 1 : -1));
    renderLikes();
    if (target) {
      likeBtn.classList.remove('bounce');
      void likeBtn.offsetWidth;
      likeBtn.classList.add('bounce');
    }
    const seq = ++likeSeq;
    try {
      await api(`/v1/posts/${encodeURIComponent(post.id)}/like`, { method: target ? 'POST' : 'DELETE' });
    } catch (err) {
      if (seq === likeSeq) {
        state.liked = before.liked;
        state.likes = before.likes;
        renderLikes();
      }
      toast(err.message, { error: true });
    }
  }
  likeBtn.addEventListener('click', () => setLiked(!state.liked));
  likesBtn.addEventListener('click', () => {
    if (state.likes > 0) accountsDialog('Likes', `/v1/posts/${encodeURIComponent(post.id)}/likes`);
    else setLiked(true);
  });
  renderLikes();

  const media = carousel(post, {
    eager,
    onDoubleTap: () => setLiked(true),
    sizes: mode === 'page' ? '(max-width: 767px) 100vw, 600px' : undefined,
    desktopSizes: mode === 'page' ? '600px' : undefined,
  });

  // caption
  const captionEl = h('div', { class: 'post-caption' });
  function renderCaption() {
    captionEl.replaceChildren();
    if (!state.caption) return;
    const text = h('p', { class: 'caption-text' },
      h('a', { class: 'username', href: userHref(author.username) }, author.username), ' ',
      richText(state.caption));
    captionEl.append(text);
    if (mode === 'feed' && (state.caption.length > 140 || state.caption.split('\n').length > 2)) {
      text.classList.add('clamped');
      const moreBtn = h('button', { type: 'button', class: 'link-btn muted' }, 'more');
      moreBtn.addEventListener('click', () => {
        text.classList.remove('clamped');
        moreBtn.remove();
      });
      captionEl.append(moreBtn);
    }
  }
  renderCaption();

  // comments
  const comments = commentsSection(post, state, { expanded: mode === 'page', onCountChange: () => comments.renderToggle() });
  const form = commentForm(post, { onAdded: (c) => comments.addLocal(c) });
  commentBtn.addEventListener('click', () => {
    if (requireSignIn()) form.focus();
  });
  shareBtn.addEventListener('click', async () => {
    const url = `${location.origin}/${postHref(post)}`;
    try {
      await navigator.clipboard.writeText(url);
      toast('Link copied');
    } catch {
      toast(url);
    }
  });

  const actions = h('div', { class: 'post-actions' }, likeBtn, commentBtn, shareBtn);
  const time = h('a', { href: postHref(post), class: 'post-date muted' }, timeEl(post.created_at, { long: true }));

  const article = h('article', { class: `post ${mode === 'page' ? 'post-single' : 'post-feed'}`, 'aria-labelledby': headingId, dataset: { postId: String(post.id) } });
  if (mode === 'page') {
    article.append(
      h('div', { class: 'post-media' }, media),
      h('div', { class: 'post-side' },
        header,
        h('div', { class: 'post-scroll' }, captionEl, comments.el),
        h('div', { class: 'post-foot' }, actions, likesLine, time, form.el)));
  } else {
    article.append(header, media, h('div', { class: 'post-body' }, actions, likesLine, captionEl, comments.el, form.el));
  }

  // options
  more.addEventListener('click', () => {
    const items = [
      { label: 'Go to post', onSelect: () => { location.hash = postHref(post); } },
      { label: 'Copy link', onSelect: () => shareBtn.click() },
      { label: `About ${author.username}`, onSelect: () => { location.hash = userHref(author.username); } },
    ];
    if (isAuthor) {
      items.unshift(
        { label: 'Edit caption', onSelect: () => editCaption() },
        {
          label: 'Delete', danger: true,
          then: [{ label: 'Delete this post? It cannot be undone.', danger: true, strong: true, onSelect: () => deletePost() }],
        });
    }
    actionSheet('Post options', items);
  });

  async function deletePost() {
    article.classList.add('pending');
    try {
      await api(`/v1/posts/${encodeURIComponent(post.id)}`, { method: 'DELETE' });
      toast('Post deleted');
      if (onDeleted) onDeleted(post);
      else article.remove();
    } catch (err) {
      article.classList.remove('pending');
      toast(err.message, { error: true });
    }
  }

  function editCaption() {
    const id = uid('edit');
    const area = h('textarea', { id, class: 'input caption-edit', rows: '4', maxlength: '2200' });
    area.value = state.caption;
    const save = h('button', { type: 'submit', class: 'btn btn-primary btn-sm' }, 'Save');
    const cancel = h('button', { type: 'button', class: 'btn btn-secondary btn-sm' }, 'Cancel');
    const editor = h('form', { class: 'caption-editor' },
      h('label', { for: id, class: 'sr-only' }, 'Caption'), area, h('div', { class: 'row gap' }, save, cancel));
    captionEl.replaceChildren(editor);
    area.focus();
    cancel.addEventListener('click', renderCaption);
    editor.addEventListener('submit', async (e) => {
      e.preventDefault();
      save.disabled = true;
      try {
        const updated = await api(`/v1/posts/${encodeURIComponent(post.id)}`, { method: 'PATCH', body: { caption: area.value } });
        state.caption = updated?.caption ?? area.value;
        renderCaption();
        toast('Caption updated');
      } catch (err) {
        save.disabled = false;
        toast(err.message, { error: true });
      }
    });
  }

  return article;
}

// ---------------------------------------------------------------- grids

export function gridItem(post) {
  const media = Array.isArray(post.media) ? post.media : [];
  const first = media[0];
  const label = `${altFor(post, 0, 1)}. ${plural(post.like_count || 0, 'like', 'likes')}, ${plural(post.comment_count || 0, 'comment', 'comments')}`;
  return h('a', { class: 'grid-item', href: postHref(post), 'aria-label': label, dataset: { postId: String(post.id) } },
    first ? thumbImage(first, '') : h('span', { class: 'slide-missing' }, icon('image')),
    media.length > 1 ? h('span', { class: 'grid-multi', 'aria-hidden': 'true' }, icon('carousel', { size: 20, filled: false })) : null,
    h('span', { class: 'grid-overlay', 'aria-hidden': 'true' },
      h('span', null, icon('heart', { filled: true, size: 20 }), formatCount(post.like_count || 0)),
      h('span', null, icon('comment', { filled: true, size: 20 }), formatCount(post.comment_count || 0))));
}

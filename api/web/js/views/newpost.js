// New post: pick photos (input or drag and drop), reorder, caption with live
// #hashtag / @mention highlighting, upload each with a progress bar, share.
import { api, session, uploadMedia } from '../api.js';
import { avatar, h, icon, toast, tokenize, uid } from '../dom.js';

const MAX_PHOTOS = 10;
const MAX_BYTES = 15 * 1024 * 1024;
const MAX_CAPTION = 2200;
const MAX_TAGS = 30;
const CONCURRENCY = 2;

/** The caption field: a transparent textarea over a mirror that colours tokens. */
export function captionEditor({ id, placeholder = 'Write a caption…', onInput }) {
  const mirror = h('div', { class: 'caption-mirror', 'aria-hidden': 'true' });
  const area = h('textarea', { id, class: 'caption-input', rows: '6', placeholder, maxlength: String(MAX_CAPTION * 2), spellcheck: 'true' });
  const box = h('div', { class: 'caption-box' }, mirror, area);
  const paint = () => {
    const frag = document.createDocumentFragment();
    for (const piece of tokenize(area.value)) {
      if (piece.type === 'text') frag.append(document.createTextNode(piece.value));
      else frag.append(h('mark', { class: piece.type === 'tag' ? 'hl-tag' : 'hl-mention' }, piece.value));
    }
    frag.append(document.createTextNode('\u200b')); // keeps a trailing newline's height
    mirror.replaceChildren(frag);
    mirror.scrollTop = area.scrollTop;
  };
  area.addEventListener('input', () => {
    paint();
    onInput?.();
  });
  area.addEventListener('scroll', () => { mirror.scrollTop = area.scrollTop; });
  paint();
  return { el: box, area, paint };
}

function fileProblem(file) {
  if (file.type && !file.type.startsWith('image/')) {
    return `“${file.name}” isn't an image. Choose JPEG, PNG, WebP or GIF photos.`;
  }
  if (file.size > MAX_BYTES) {
    return `“${file.name}” is ${(file.size / 1048576).toFixed(1)} MB; photos can be at most 15 MB.`;
  }
  return null;
}

export async function newPostView(root, { signal }) {
  document.title = 'New post • photostream';
  const items = []; // {key, file, url, status, progress, media, error, ctrl, el, ...}
  let dragKey = null;
  let shareRequested = false;
  let sharing = false;

  // ---- pieces
  const fileId = uid('files');
  const fileInput = h('input', { id: fileId, type: 'file', class: 'sr-only file-input', accept: 'image/jpeg,image/png,image/webp,image/gif,image/*', multiple: true });
  const touch = matchMedia('(pointer: coarse)').matches;
  const drop = h('div', { class: 'dropzone' },
    icon('image', { size: 56 }),
    h('p', { class: 'dropzone-title' }, touch ? 'Share your photos' : 'Drag photos here'),
    h('p', { class: 'muted small' }, `Up to ${MAX_PHOTOS} photos: JPEG, PNG, WebP or GIF, 15 MB each`),
    fileInput,
    h('label', { for: fileId, class: 'btn btn-primary' }, touch ? 'Select photos' : 'Select from computer'));
  const list = h('ol', { class: 'np-list', 'aria-label': 'Selected photos, in the order they will appear' });
  const addMoreId = uid('more');
  const addMoreInput = h('input', { id: addMoreId, type: 'file', class: 'sr-only file-input', accept: 'image/*', multiple: true });
  const addMore = h('div', { class: 'np-add-more' }, addMoreInput,
    h('label', { for: addMoreId, class: 'np-add-tile', title: 'Add photos' }, icon('create', { size: 28 }), h('span', { class: 'sr-only' }, 'Add more photos')));
  const mediaPane = h('section', { class: 'np-media', 'aria-label': 'Photos' }, drop, list);
  const messages = h('div', { class: 'form-error np-errors', role: 'alert' });

  const captionId = uid('caption');
  const counter = h('span', { class: 'muted small np-count' });
  const tokensLine = h('p', { class: 'np-tokens small', 'aria-live': 'polite' });
  const caption = captionEditor({ id: captionId, onInput: () => renderCaptionInfo() });
  const shareBtn = h('button', { type: 'submit', class: 'btn btn-primary btn-block' }, 'Share');
  const shareHint = h('p', { class: 'muted small center np-hint', 'aria-live': 'polite' });
  const me = session.me || { username: '' };
  const form = h('form', { class: 'np-details', novalidate: true, 'aria-label': 'Post details' },
    h('div', { class: 'np-me' }, avatar(me, 28), h('span', { class: 'strong' }, me.username)),
    h('label', { for: captionId, class: 'field-label' }, 'Caption'),
    caption.el,
    h('div', { class: 'np-caption-foot' }, tokensLine, counter),
    messages,
    shareBtn,
    shareHint);

  const page = h('div', { class: 'new-post' },
    h('header', { class: 'np-head' }, h('h1', { class: 'page-title' }, 'Create new post')),
    h('div', { class: 'np-grid' }, mediaPane, form));
  root.append(page);

  // ---- caption info
  function captionStats() {
    const text = caption.area.value;
    const pieces = tokenize(text);
    const tags = [...new Set(pieces.filter((p) => p.type === 'tag').map((p) => p.value.toLowerCase()))];
    const mentions = [...new Set(pieces.filter((p) => p.type === 'mention').map((p) => p.value.toLowerCase()))];
    return { length: [...text].length, tags, mentions };
  }
  function renderCaptionInfo() {
    const { length, tags, mentions } = captionStats();
    counter.textContent = `${length.toLocaleString()}/${MAX_CAPTION.toLocaleString()}`;
    counter.classList.toggle('over', length > MAX_CAPTION);
    const bits = [];
    if (tags.length) bits.push(h('span', { class: tags.length > MAX_TAGS ? 'over' : 'hl-tag-text' }, `${tags.length} hashtag${tags.length === 1 ? '' : 's'}${tags.length > MAX_TAGS ? ` (max ${MAX_TAGS})` : ''}: ${tags.join(' ')}`));
    if (mentions.length) bits.push(h('span', { class: 'hl-mention-text' }, `Mentions: ${mentions.join(' ')}`));
    tokensLine.replaceChildren(...bits.flatMap((b, i) => (i ? [' · ', b] : [b])));
    renderShare();
  }

  // ---- photos
  function showMessage(text) {
    messages.textContent = text;
  }

  function addFiles(fileList) {
    const problems = [];
    for (const file of fileList) {
      if (items.length >= MAX_PHOTOS) {
        problems.push(`You can share up to ${MAX_PHOTOS} photos in one post.`);
        break;
      }
      const problem = fileProblem(file);
      if (problem) {
        problems.push(problem);
        continue;
      }
      const item = { key: uid('photo'), file, url: URL.createObjectURL(file), status: 'queued', progress: 0, media: null, error: '' };
      items.push(item);
    }
    showMessage(problems.join(' '));
    render();
    pump();
  }

  function pump() {
    let active = items.filter((i) => i.status === 'uploading').length;
    for (const item of items) {
      if (active >= CONCURRENCY) break;
      if (item.status !== 'queued') continue;
      active += 1;
      upload(item);
    }
    renderShare();
  }

  async function upload(item) {
    item.status = 'uploading';
    item.progress = 0;
    item.error = '';
    item.ctrl = new AbortController();
    updateItem(item);
    try {
      item.media = await uploadMedia(item.file, {
        signal: item.ctrl.signal,
        onProgress: (p) => {
          item.progress = p;
          updateItem(item);
        },
      });
      item.status = 'done';
      item.progress = 1;
    } catch (err) {
      if (err.name === 'AbortError') return;
      item.status = 'error';
      item.error = err.message;
    }
    updateItem(item);
    pump();
    if (shareRequested) share();
  }

  function move(item, delta) {
    const i = items.indexOf(item);
    const j = i + delta;
    if (j < 0 || j >= items.length) return;
    items.splice(i, 1);
    items.splice(j, 0, item);
    render();
    item.el.querySelector(delta < 0 ? '.np-left' : '.np-right')?.focus();
    if (item.el.querySelector(delta < 0 ? '.np-left' : '.np-right')?.disabled) item.el.querySelector('.np-remove').focus();
  }

  function remove(item) {
    item.ctrl?.abort();
    URL.revokeObjectURL(item.url);
    items.splice(items.indexOf(item), 1);
    render();
    pump();
    if (shareRequested && items.length) share();
  }

  function statusText(item) {
    if (item.status === 'queued') return 'Waiting…';
    if (item.status === 'uploading') return `Uploading ${Math.round(item.progress * 100)}%`;
    if (item.status === 'done') return 'Uploaded';
    return item.error;
  }

  function buildItem(item) {
    const progress = h('progress', { class: 'np-progress', max: '100', value: '0' });
    const status = h('p', { class: 'np-status small' });
    const retry = h('button', { type: 'button', class: 'btn btn-secondary btn-sm np-retry' }, 'Retry');
    retry.addEventListener('click', () => {
      item.status = 'queued';
      pump();
    });
    const left = h('button', { type: 'button', class: 'icon-btn np-left' }, icon('left', { size: 18 }));
    const right = h('button', { type: 'button', class: 'icon-btn np-right' }, icon('right', { size: 18 }));
    const del = h('button', { type: 'button', class: 'icon-btn np-remove' }, icon('close', { size: 18 }));
    left.addEventListener('click', () => move(item, -1));
    right.addEventListener('click', () => move(item, 1));
    del.addEventListener('click', () => remove(item));
    const progressId = uid('progress');
    progress.id = progressId;
    const li = h('li', { class: 'np-item', draggable: true, dataset: { key: item.key } },
      h('div', { class: 'np-thumb' },
        h('img', { src: item.url, alt: `Preview of ${item.file.name}`, draggable: false }),
        h('span', { class: 'np-index', 'aria-hidden': 'true' })),
      h('label', { for: progressId, class: 'sr-only' }, `Upload of ${item.file.name}`),
      progress, status, retry,
      h('div', { class: 'np-controls' }, left, right, del));
    li.addEventListener('dragstart', (e) => {
      dragKey = item.key;
      li.classList.add('dragging');
      e.dataTransfer.effectAllowed = 'move';
      e.dataTransfer.setData('text/plain', item.key);
    });
    li.addEventListener('dragend', () => {
      dragKey = null;
      li.classList.remove('dragging');
      for (const el of list.querySelectorAll('.drop-before, .drop-after')) el.classList.remove('drop-before', 'drop-after');
    });
    li.addEventListener('dragover', (e) => {
      if (!dragKey || dragKey === item.key) return;
      e.preventDefault();
      e.stopPropagation();
      const rect = li.getBoundingClientRect();
      const after = e.clientX > rect.left + rect.width / 2;
      li.classList.toggle('drop-after', after);
      li.classList.toggle('drop-before', !after);
    });
    li.addEventListener('dragleave', () => li.classList.remove('drop-before', 'drop-after'));
    li.addEventListener('drop', (e) => {
      if (!dragKey) return;
      e.preventDefault();
      e.stopPropagation();
      const dragged = items.find((i) => i.key === dragKey);
      const after = li.classList.contains('drop-after');
      li.classList.remove('drop-before', 'drop-after');
      if (!dragged || dragged === item) return;
      items.splice(items.indexOf(dragged), 1);
      items.splice(items.indexOf(item) + (after ? 1 : 0), 0, dragged);
      dragKey = null;
      render();
    });
    item.el = li;
    return li;
  }

  function updateItem(item) {
    const li = item.el;
    if (!li) return;
    const i = items.indexOf(item);
    const n = items.length;
    const name = `photo ${i + 1}`;
    li.querySelector('.np-index').textContent = i === 0 ? '1 · Cover' : String(i + 1);
    const progress = li.querySelector('.np-progress');
    progress.value = Math.round(item.progress * 100);
    progress.hidden = item.status === 'error';
    li.classList.toggle('done', item.status === 'done');
    li.classList.toggle('failed', item.status === 'error');
    const status = li.querySelector('.np-status');
    status.textContent = statusText(item);
    status.setAttribute('role', item.status === 'error' ? 'alert' : 'none');
    li.querySelector('.np-retry').hidden = item.status !== 'error';
    const left = li.querySelector('.np-left');
    const right = li.querySelector('.np-right');
    left.disabled = i === 0;
    right.disabled = i === n - 1;
    left.setAttribute('aria-label', `Move ${name} left`);
    right.setAttribute('aria-label', `Move ${name} right`);
    li.querySelector('.np-remove').setAttribute('aria-label', `Remove ${name} (${item.file.name})`);
  }

  function render() {
    for (const item of items) if (!item.el) buildItem(item);
    list.replaceChildren(...items.map((i) => i.el));
    if (items.length && items.length < MAX_PHOTOS) list.append(h('li', { class: 'np-more-slot' }, addMore));
    for (const item of items) updateItem(item);
    drop.hidden = items.length > 0;
    mediaPane.classList.toggle('has-items', items.length > 0);
    renderShare();
  }

  function renderShare() {
    const { length, tags } = captionStats();
    const pending = items.filter((i) => i.status === 'queued' || i.status === 'uploading').length;
    const failed = items.filter((i) => i.status === 'error').length;
    const tooLong = length > MAX_CAPTION || tags.length > MAX_TAGS;
    shareBtn.disabled = sharing || items.length === 0 || failed > 0 || tooLong;
    shareBtn.textContent = sharing ? 'Sharing…' : shareRequested && pending ? 'Finishing uploads…' : 'Share';
    if (!items.length) shareHint.textContent = 'Add at least one photo to share.';
    else if (failed) shareHint.textContent = 'Retry or remove the photos that could not be uploaded.';
    else if (tooLong) shareHint.textContent = length > MAX_CAPTION ? `Captions can be at most ${MAX_CAPTION} characters.` : `Captions can have at most ${MAX_TAGS} hashtags.`;
    else if (pending) shareHint.textContent = `Uploading ${pending} photo${pending === 1 ? '' : 's'}…`;
    else shareHint.textContent = `${items.length} photo${items.length === 1 ? '' : 's'} ready.`;
  }

  async function share() {
    if (sharing) return;
    if (!items.length) {
      showMessage('Add at least one photo first.');
      return;
    }
    if (items.some((i) => i.status === 'error')) {
      showMessage('Some photos could not be uploaded: retry or remove them.');
      return;
    }
    if (items.some((i) => i.status !== 'done')) {
      shareRequested = true; // share as soon as the uploads finish
      renderShare();
      return;
    }
    shareRequested = false;
    sharing = true;
    showMessage('');
    renderShare();
    try {
      const post = await api('/v1/posts', {
        method: 'POST',
        body: { caption: caption.area.value.trim(), media_ids: items.map((i) => i.media.id) },
      });
      for (const item of items) URL.revokeObjectURL(item.url);
      items.length = 0;
      toast('Your post has been shared.');
      location.hash = post?.id ? `#/p/${encodeURIComponent(post.id)}` : `#/u/${encodeURIComponent(me.username)}`;
    } catch (err) {
      sharing = false;
      showMessage(err.message);
      renderShare();
    }
  }

  // ---- events
  for (const input of [fileInput, addMoreInput]) {
    input.addEventListener('change', () => {
      addFiles([...input.files]);
      input.value = '';
    });
  }
  const isFileDrag = (e) => [...(e.dataTransfer?.types || [])].includes('Files');
  page.addEventListener('dragover', (e) => {
    if (!isFileDrag(e)) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    mediaPane.classList.add('dragover');
  });
  page.addEventListener('dragleave', (e) => {
    if (!page.contains(e.relatedTarget)) mediaPane.classList.remove('dragover');
  });
  page.addEventListener('drop', (e) => {
    if (!isFileDrag(e)) return;
    e.preventDefault();
    mediaPane.classList.remove('dragover');
    addFiles([...e.dataTransfer.files]);
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    share();
  });
  signal.addEventListener('abort', () => {
    for (const item of items) {
      item.ctrl?.abort();
      URL.revokeObjectURL(item.url);
    }
  }, { once: true });

  renderCaptionInfo();
  render();
}

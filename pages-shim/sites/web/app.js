// The public wiki: lists pages and shows one, reading the API through the
// site's own /api/ (the Pages shim and its service binding). The page
// bodies are Markdown; they are shown as text, never as HTML.

import { describeFailure } from './common/failure.js';

const listing = document.getElementById('listing');
const pages = document.getElementById('pages');
const more = document.getElementById('more');
const article = document.getElementById('page');
const status = document.getElementById('status');

let nextCursor = null;

function showStatus(text, isError = false) {
  status.textContent = text;
  status.className = isError ? 'error' : '';
}

async function loadListing(cursor) {
  const query = new URLSearchParams({ limit: '50' });
  if (cursor) query.set('cursor', cursor);
  const response = await fetch(`/api/v1/pages?${query}`);
  if (!response.ok) {
    showStatus(await describeFailure(response), true);
    return;
  }
  const { items, next_cursor: next } = await response.json();
  if (!cursor) pages.replaceChildren();
  for (const item of items) {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = `#/pages/${encodeURIComponent(item.slug)}`;
    a.textContent = item.title;
    a.dataset.slug = item.slug;
    li.append(a);
    pages.append(li);
  }
  nextCursor = next ?? null;
  more.hidden = !nextCursor;
  showStatus(items.length || cursor ? '' : 'No pages yet.');
}

async function loadPage(slug) {
  const response = await fetch(`/api/v1/pages/${encodeURIComponent(slug)}`);
  if (!response.ok) {
    article.hidden = true;
    showStatus(await describeFailure(response), true);
    return;
  }
  const page = await response.json();
  document.getElementById('page-title').textContent = page.title;
  document.getElementById('page-meta').textContent =
    `revision ${page.revision} by ${page.author}, ${page.updated_at}`;
  const body = document.getElementById('page-body');
  body.replaceChildren(
    ...page.body.split(/\n{2,}/).map((paragraph) => {
      const p = document.createElement('p');
      p.textContent = paragraph;
      return p;
    }),
  );
  article.hidden = false;
  showStatus('');
}

function route() {
  const match = location.hash.match(/^#\/pages\/(.+)$/);
  listing.hidden = Boolean(match);
  article.hidden = true;
  if (match) {
    loadPage(decodeURIComponent(match[1]));
  } else {
    loadListing(null);
  }
}

more.addEventListener('click', () => loadListing(nextCursor));
window.addEventListener('hashchange', route);
route();

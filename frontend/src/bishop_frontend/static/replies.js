// replies.js: a chat's message actions (copy, edit and resend, the alternatives pager) and
// messages' times in the reader's own time zone. Loaded once for the whole app: delegated,
// and idempotent for content htmx swaps in.
(() => {
  if (window.bishopReplies) return;
  window.bishopReplies = true;

  function localTimes(root) {
    root.querySelectorAll("time.stamp[datetime]:not([data-local])").forEach((t) => {
      const when = new Date(t.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) return;
      const today = when.toDateString() === new Date().toDateString();
      const clock = { hour: "2-digit", minute: "2-digit" };
      t.textContent = when.toLocaleString([], today ? clock : { day: "numeric", month: "short", ...clock });
      t.title = when.toLocaleString();
      t.dataset.local = "1";
    });
  }

  function repliesIn(box) {
    return [...box.children].filter((c) => c.matches(".msg.avatar"));
  }

  function show(box, index) {
    const replies = repliesIn(box);
    if (!replies.length) return;
    const current = Math.max(0, Math.min(index, replies.length - 1));
    box.dataset.current = String(current);
    replies.forEach((reply, i) => {
      reply.hidden = i !== current;
      const pager = reply.querySelector(".pager");
      if (!pager) return;
      pager.hidden = replies.length < 2;
      pager.querySelector(".alt-count").textContent = `${i + 1}/${replies.length}`;
      pager.querySelector(".alt-prev").disabled = i === 0;
      pager.querySelector(".alt-next").disabled = i === replies.length - 1;
    });
  }

  // A new alternative (or one fewer) shows the newest; a reply redrawn in place keeps the view.
  function refresh(box) {
    const count = repliesIn(box).length;
    const same = box.dataset.count === String(count);
    box.dataset.count = String(count);
    show(box, same ? Number(box.dataset.current) : count - 1);
  }

  let queued = false;
  function refreshSoon() {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      document.querySelectorAll(".alternatives").forEach(refresh);
      localTimes(document);
    });
  }
  // Replies come and go by htmx swaps, SSE swaps and deletes alike: watch the DOM itself.
  new MutationObserver(refreshSoon).observe(document.documentElement, { childList: true, subtree: true });
  document.addEventListener("DOMContentLoaded", refreshSoon);
  refreshSoon();

  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    const area = Object.assign(document.createElement("textarea"), { value: text });
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }

  // The editor is copied from the page's template when asked for, not sent with every message.
  function openEditor(bubble, open) {
    if (!bubble) return;
    let form = bubble.querySelector(".edit-form");
    if (open && !form) {
      const template = document.getElementById("edit-form-template");
      const button = bubble.querySelector(".edit-open");
      const turn = bubble.closest(".turn");
      if (!template || !button || !turn) return;
      form = template.content.firstElementChild.cloneNode(true);
      form.setAttribute("hx-post", button.dataset.edit);
      form.setAttribute("hx-target", "#" + turn.id);
      form.querySelector("textarea").value = bubble.querySelector(".copy")?.dataset.raw ?? "";
      bubble.append(form);
      htmx.process(form);
    }
    if (!form) return;
    bubble.classList.toggle("editing", open);
    if (open) {
      const area = form.querySelector("textarea");
      area.focus();
      area.setSelectionRange(area.value.length, area.value.length);
    } else {
      form.remove();
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button");
    if (!button) return;
    if (button.matches(".copy")) {
      const bubble = button.closest(".msg");
      const text = button.dataset.raw || bubble?.querySelector(".text")?.innerText || "";
      copy(text).then(() => {
        button.textContent = "Copied";
        setTimeout(() => { button.textContent = "Copy"; }, 1500);
      });
    } else if (button.matches(".edit-open")) {
      openEditor(button.closest(".msg.user"), true);
    } else if (button.matches(".edit-cancel")) {
      openEditor(button.closest(".msg.user"), false);
    } else if (button.matches(".alt-prev, .alt-next")) {
      const box = button.closest(".alternatives");
      if (box) show(box, Number(box.dataset.current || 0) + (button.matches(".alt-next") ? 1 : -1));
    }
  });

  document.addEventListener("keydown", (event) => {
    const form = event.target.closest?.(".edit-form");
    if (form && event.key === "Escape") openEditor(form.closest(".msg.user"), false);
  });

  // An edited message is sent again: what followed it is gone from the chat, so from the page.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const form = event.detail.requestConfig?.elt;
    if (!form?.matches?.(".edit-form") || !event.detail.shouldSwap) return;
    if (event.detail.xhr.getResponseHeader("HX-Reswap") === "none") return;
    const turn = form.closest(".turn");
    while (turn?.nextElementSibling) turn.nextElementSibling.remove();
  });
})();

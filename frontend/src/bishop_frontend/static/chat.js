// The chat page: it opens at the newest message with the composer focused, follows a reply
// while it streams if the reader is at the bottom (else a "New messages" pill says there is
// more), loads older messages when the reader scrolls up, and opens the chat list on phones.
// Loaded on every page and set up for each swapped-in chat (htmx.onLoad): idempotent.
(function () {
  var NEAR_BOTTOM = 48; // px from the end that still count as "at the bottom"
  var NEAR_TOP = 400; // px from the start where older messages are asked for

  function atBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight <= NEAR_BOTTOM;
  }

  function toBottom(box) {
    box.scrollTop = box.scrollHeight;
    pin(box);
    showPill(false);
  }

  // Where the pane was when it was last at the bottom: a reader who has scrolled up since (in
  // this very frame, before any scroll event) is not pulled back down.
  function pin(box) {
    box._stick = true;
    box._pinnedTop = box.scrollTop;
  }

  function pinned(box) {
    return box._stick && box.scrollTop >= (box._pinnedTop || 0) - NEAR_BOTTOM;
  }

  // The first message under the "Load earlier" button, and where it is in the pane: older
  // messages come in above it, and it must stay where the reader sees it.
  function anchorOf(box) {
    var button = box.querySelector(".load-earlier");
    var el = button && button.nextElementSibling;
    return el ? { el: el, offset: offsetIn(box, el) } : null;
  }

  function offsetIn(box, el) {
    return el.getBoundingClientRect().top - box.getBoundingClientRect().top;
  }

  function keepAnchor(box) {
    var anchor = box._anchor;
    if (anchor && anchor.el.isConnected) box.scrollTop += offsetIn(box, anchor.el) - anchor.offset;
  }

  function showPill(show) {
    var pill = document.getElementById("new-messages");
    if (pill) pill.hidden = !show;
  }

  // The chat fills the window under the top bar, so only its message pane scrolls.
  function fit(app) {
    if (!app.isConnected) return;
    var main = app.closest("main");
    var below = main ? parseFloat(getComputedStyle(main).paddingBottom) || 0 : 0;
    var top = app.getBoundingClientRect().top + window.scrollY;
    app.style.height = Math.max(320, window.innerHeight - top - below) + "px";
  }

  function askForEarlier(box) {
    var button = box.querySelector(".load-earlier");
    if (!button || button.dataset.asked) return;
    button.dataset.asked = "1";
    htmx.trigger(button, "click");
  }

  // Something added or written, not a message taken away.
  function isNews(mutation) {
    return mutation.type === "characterData" || mutation.addedNodes.length > 0;
  }

  function follow(box) {
    // Mutations of an older page coming in above are not news.
    new MutationObserver(function (mutations) {
      if (box._anchor) return keepAnchor(box);
      if (pinned(box)) toBottom(box);
      else if (mutations.some(isNews)) showPill(true);
    }).observe(box, { childList: true, subtree: true, characterData: true });
    box.addEventListener("scroll", function () {
      box._stick = atBottom(box);
      if (box._stick) {
        pin(box);
        showPill(false);
      }
      if (box.scrollTop < NEAR_TOP) askForEarlier(box);
    }, { passive: true });
  }

  function openAt(box) {
    var found = (box.dataset.at || "").split(" ").map(function (id) {
      return id && document.getElementById(id);
    }).filter(Boolean)[0];
    if (found) {
      found.scrollIntoView({ block: "center" });
      found.classList.add("found");
      if (atBottom(box)) pin(box);
    } else {
      toBottom(box);
    }
  }

  function setUp(app) {
    if (app._ready) return;
    app._ready = true;
    fit(app);
    var box = app.querySelector("#messages");
    if (box) {
      follow(box);
      openAt(box);
    }
    var composer = app.querySelector("#message");
    if (composer) composer.focus({ preventScroll: true });
  }

  htmx.onLoad(function (el) {
    var app = el.id === "chat-app" ? el : el.querySelector && el.querySelector("#chat-app");
    if (app) setUp(app);
  });

  window.addEventListener("resize", function () {
    var app = document.getElementById("chat-app");
    if (!app) return;
    var box = app.querySelector("#messages");
    var stick = box && atBottom(box);
    fit(app);
    if (stick) toBottom(box);
  });

  // Older messages replace the "Load earlier" button: the reader stays where they were, also
  // while the new bubbles settle (their scripts may still change their height).
  document.addEventListener("htmx:beforeSwap", function (event) {
    var box = document.getElementById("messages");
    if (!box) return;
    var target = event.detail.target;
    if (target && target.classList && target.classList.contains("load-earlier")) {
      box._anchor = anchorOf(box);
    } else if (target === box) {
      // The user's own message (and the reply after it) is always shown.
      pin(box);
    }
  });

  var SETTLED_MS = 150; // htmx settles swapped content after 20 ms; its onLoad scripts run then

  document.addEventListener("htmx:afterSwap", function () {
    var box = document.getElementById("messages");
    if (!box) return;
    if (!box._anchor) {
      if (pinned(box)) toBottom(box);
      return;
    }
    keepAnchor(box);
    setTimeout(function () {
      keepAnchor(box);
      box._anchor = null;
      if (box.scrollTop < NEAR_TOP) askForEarlier(box);
    }, SETTLED_MS);
  });

  document.addEventListener("htmx:afterSettle", function () {
    var box = document.getElementById("messages");
    if (box && box._anchor) keepAnchor(box);
  });

  document.addEventListener("click", function (event) {
    var pill = event.target.closest("#new-messages");
    if (pill) {
      var box = document.getElementById("messages");
      if (box) toBottom(box);
      return;
    }
    var toggle = event.target.closest("[data-chat-sidebar]");
    var app = document.getElementById("chat-app");
    if (!toggle || !app) return;
    var open = toggle.dataset.chatSidebar === "open";
    app.classList.toggle("sidebar-open", open);
    var focus = open ? app.querySelector("#chat-search") : app.querySelector("[data-chat-sidebar=open]");
    if (focus) focus.focus();
  });

  document.addEventListener("keydown", function (event) {
    var app = document.getElementById("chat-app");
    if (event.key === "Escape" && app && app.classList.contains("sidebar-open")) {
      app.classList.remove("sidebar-open");
    }
  });
})();

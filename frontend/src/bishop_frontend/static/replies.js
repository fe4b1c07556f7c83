// replies.js

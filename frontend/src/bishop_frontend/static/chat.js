// chat.js

// materials.js

'use strict';
// `require('socket-lease/socket.io')`: the Socket.IO middleware. See index.d.ts for the API.
module.exports = require('./guard.cjs');

//! socket.io transport (being written).

//! Server-side assignors (`group.consumer.assignors`): `uniform` and `range`.

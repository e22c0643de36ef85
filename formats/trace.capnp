@0xd3a1c7e5b2f40917;
# Placeholder replaced by the formats work (issue 2).
struct Placeholder { unused @0 :UInt8; }

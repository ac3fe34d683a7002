-- Prosody: what olpcidx needs, to merge into /etc/prosody/prosody.cfg.lua
-- (or put in /etc/prosody/conf.d/olpcidx.cfg.lua).  school.lan is the
-- laptops' domain, index.school.lan the component; the secret is the one
-- olpcidx reads with --secret-file or the secret key of /etc/olpcidx.conf.

-- The component port, on loopback only: olpcidx runs on the same machine.
component_ports = { 5347 }
component_interfaces = { "127.0.0.1" }

-- For the Gadget dialect (the Sugar client): PEP (XEP-0163) carries the
-- published laptops' buddy properties to the component.  "pep" is on in
-- Debian's default configuration; add it to the existing list.
modules_enabled = {
    -- ... the modules already there ...
    "pep";
    "disco";
}

VirtualHost "school.lan"

-- The index.
Component "index.school.lan"
    component_secret = "a long random secret"

-- Shared activities are MUC rooms; olpcidx joins those it is invited to.
Component "conference.school.lan" "muc"
    -- telepathy-gabble 0.10 configures new rooms with an iq Prosody
    -- drops: they would stay locked to everyone else.
    muc_room_locking = false

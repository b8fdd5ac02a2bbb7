-- Where a message lies in the message log. Rows indexed from the log keep their body there, not here
-- (body is NULL): the forwarder and the history read it by this offset.
ALTER TABLE messages ADD COLUMN log_offset INTEGER;

-- The keyed-since mark: the log position from which every event must be
-- chained under the keyed rule, signed under the chain key (HMAC-SHA-256,
-- see eventcodec.ChainKey.SignKeyedSince). Without it, a database writer
-- could rewrite a whole stream under the public unkeyed rule and pass it
-- off as one written before chains were keyed. It sits beside the master
-- key check, in Postgres, whichever event store the service runs on. The
-- first process to start after this migration writes it.

-- +goose Up
CREATE TABLE rapport.keyed_since (
    id         integer     PRIMARY KEY DEFAULT 1 CONSTRAINT keyed_since_single_row CHECK (id = 1),
    position   bigint      NOT NULL,
    -- recreated says the mark was missing although keyed events existed
    -- (a database writer may have removed it): covered by the signature,
    -- so that verification keeps saying so.
    recreated  boolean     NOT NULL,
    signature  text        NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE rapport.keyed_since;

mod docs_kdl;

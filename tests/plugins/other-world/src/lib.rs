//! A valid WebAssembly component of a world that is not vane's `balancer`: vane must refuse it
//! by name when it is offered as a policy.

// The bindings wit-bindgen generates export raw symbols and carry no docs.
#![allow(unsafe_code, missing_docs)]

wit_bindgen::generate!({
    inline: "package test:other@0.1.0;\nworld other {\n  export greet: func() -> string;\n}\n",
});

struct Other;

impl Guest for Other {
    fn greet() -> String {
        "hello from another world".to_owned()
    }
}

export!(Other);
